"""What checking each Redis + PostgreSQL read against the record costs
(BCS_VERIFY_READS_WITH_RECORD): /define's counts read of a 300-essay batch, latency one at a
time and throughput with 2,000 at once, with the check off and on. Prints figures only; uses
its own key prefix and schema and removes them afterwards.
Environment: BCS_BENCH_REDIS_URL, BCS_BENCH_DATABASE_URL; BCS_BENCH_VERIFIED_READS (default
2000) for fewer reads in a quick run.
"""

import asyncio
import os
import sys
import time

from stores import postgres_reachable, production_stores, seed_batch

from batch_conductor_service.stores.durable import DurableBatchStateRepository
from batch_conductor_service.stores.postgres.record import PostgresBatchRecord
from batch_conductor_service.stores.redis.store import RedisBatchStateRepository

ESSAYS = 300
READS = int(os.environ.get("BCS_BENCH_VERIFIED_READS", "2000"))


async def main() -> None:
    unreachable = await postgres_reachable()
    if unreachable is not None:
        sys.exit(f"bench_verified_reads: needs PostgreSQL: {unreachable}")
    async with production_stores(with_postgres=True) as (container, metrics):
        redis = await container.get(RedisBatchStateRepository)
        record = await container.get(PostgresBatchRecord)
        await seed_batch(DurableBatchStateRepository(redis, record, metrics), "b", ESSAYS)
        print(f"counts read of a {ESSAYS}-essay batch on Redis + PostgreSQL (pool of 10):")
        for check in (False, True):
            repository = DurableBatchStateRepository(redis, record, metrics, verify_reads=check)
            for _ in range(min(200, READS)):
                await repository.counts("b")
            started = time.perf_counter()
            for _ in range(READS):
                await repository.counts("b")
            sequential = (time.perf_counter() - started) / READS * 1e6
            started = time.perf_counter()
            await asyncio.gather(*(repository.counts("b") for _ in range(READS)))
            throughput = READS / (time.perf_counter() - started)
            print(
                f"  verify against the record {'on ' if check else 'off'}: "
                f"{sequential:6.0f} us per read one at a time, "
                f"{throughput:7.0f} reads/s with {READS} at once"
            )


if __name__ == "__main__":
    asyncio.run(main())
