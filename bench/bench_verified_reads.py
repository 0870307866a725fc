"""What checking each Redis + PostgreSQL read against the record costs
(BCS_VERIFY_READS_WITH_RECORD): /define's counts read of a 300-essay batch, latency one at a
time and throughput with 2,000 at once, with the check off and on. Prints figures only; uses
its own key prefix and schema and removes them afterwards.
Environment: BCS_BENCH_REDIS_URL, BCS_BENCH_DATABASE_URL.
"""

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime

import asyncpg
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from batch_conductor_service.domain.batch_state import (
    BatchStateChange,
    EssayOutcome,
    EssayStepOutcome,
    RosterSource,
)
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.circuit_breaker import CircuitBreaker
from batch_conductor_service.stores.durable import DurableBatchStateRepository
from batch_conductor_service.stores.postgres.record import PostgresBatchRecord
from batch_conductor_service.stores.postgres.schema import ensure_schema
from batch_conductor_service.stores.redis.repository import RedisBatchStateRepository

REDIS_URL = os.environ.get("BCS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get("BCS_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
ESSAYS = 300
READS = 2000


async def main() -> None:
    metrics = BcsMetrics(CollectorRegistry())
    pool = await asyncpg.create_pool(DATABASE_URL, min_size=1, max_size=10)
    schema = f"bcs_bench_{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as connection:
        await ensure_schema(connection, schema)
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    redis = RedisBatchStateRepository(
        client,
        ttl_seconds=600,
        metrics=metrics,
        breaker=CircuitBreaker("redis", 5, 10.0),
        key_prefix=prefix,
    )
    record = PostgresBatchRecord(
        pool, schema=schema, metrics=metrics, breaker=CircuitBreaker("postgresql", 5, 10.0)
    )
    essays = [f"e{i}" for i in range(ESSAYS)]
    now = datetime.now(UTC)
    try:
        await DurableBatchStateRepository(redis, record, metrics).apply_many(
            [
                BatchStateChange("r", "b", now, frozenset(essays), RosterSource.READY),
                BatchStateChange(
                    "s",
                    "b",
                    now,
                    essay_outcomes=tuple(
                        EssayStepOutcome(e, "spellcheck", EssayOutcome.SUCCEEDED) for e in essays
                    ),
                ),
            ]
        )
        print(f"counts read of a {ESSAYS}-essay batch on Redis + PostgreSQL (pool of 10):")
        for check in (False, True):
            repository = DurableBatchStateRepository(redis, record, metrics, check_reads=check)
            for _ in range(200):
                await repository.get_counts("b")
            started = time.perf_counter()
            for _ in range(READS):
                await repository.get_counts("b")
            sequential = (time.perf_counter() - started) / READS * 1e6
            started = time.perf_counter()
            await asyncio.gather(*(repository.get_counts("b") for _ in range(READS)))
            throughput = READS / (time.perf_counter() - started)
            print(
                f"  verify against the record {'on ' if check else 'off'}: "
                f"{sequential:6.0f} us per read one at a time, "
                f"{throughput:7.0f} reads/s with {READS} at once"
            )
    finally:
        for key in await client.keys(f"{prefix}:*"):
            await client.delete(key)
        async with pool.acquire() as connection:
            await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await client.aclose()
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
