"""Repository speed against the real Redis (and PostgreSQL when reachable): snapshot read
latency for 10 vs 10,000 essays, and apply throughput one change at a time vs apply_many.

Prints figures only. Uses its own key prefix and schema and removes them afterwards.
Environment: BCS_BENCH_REDIS_URL, BCS_BENCH_DATABASE_URL.
"""

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
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
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.stores.circuit_breaker import CircuitBreaker
from batch_conductor_service.stores.durable import (
    DurableBatchStateRepository,
)
from batch_conductor_service.stores.postgres.record import PostgresBatchRecord
from batch_conductor_service.stores.postgres.schema import ensure_schema
from batch_conductor_service.stores.redis.repository import (
    RedisBatchStateRepository,
)

REDIS_URL = os.environ.get("BCS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get("BCS_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
NOW = datetime.now(UTC)


def essay_event(batch: str, essay: str, n: int) -> BatchStateChange:
    return BatchStateChange(
        event_id=f"{batch}-{n}",
        batch_id=batch,
        occurred_at=NOW,
        essay_outcomes=(EssayStepOutcome(essay, "spellcheck", EssayOutcome.SUCCEEDED),),
    )


async def seed(repository: BatchStateRepositoryProtocol, batch: str, essays: int) -> None:
    ids = [f"essay-{i}" for i in range(essays)]
    await repository.apply_many(
        [
            BatchStateChange(
                event_id=f"{batch}-roster",
                batch_id=batch,
                occurred_at=NOW,
                roster=frozenset(ids),
                roster_source=RosterSource.READY,
            ),
            BatchStateChange(
                event_id=f"{batch}-outcomes",
                batch_id=batch,
                occurred_at=NOW,
                essay_outcomes=tuple(
                    EssayStepOutcome(e, step, EssayOutcome.SUCCEEDED)
                    for e in ids
                    for step in ("spellcheck", "nlp")
                ),
            ),
        ]
    )


async def median_ms(operation: Callable[[], Awaitable[object]], rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        await operation()
        timings.append(1000 * (time.perf_counter() - start))
    return statistics.median(timings)


async def bench(name: str, repository: BatchStateRepositoryProtocol, run: str) -> None:
    print(f"\n{name}")
    for essays, rounds in ((10, 300), (10_000, 20)):
        batch = f"{run}-read-{essays}"
        await seed(repository, batch, essays)
        ms = await median_ms(lambda b=batch: repository.get_snapshot(b), rounds)  # type: ignore[misc]
        print(f"  snapshot read, {essays:>6} essays: median {ms:8.3f} ms")
    total = 2000
    # Spread over 20 batches, as a fetched Kafka batch usually is.
    changes = [essay_event(f"{run}-w{i % 20}", f"essay-{i}", i) for i in range(total)]
    start = time.perf_counter()
    for change in changes[: total // 4]:
        await repository.apply(change)
    single = (total // 4) / (time.perf_counter() - start)
    start = time.perf_counter()
    for offset in range(total // 4, total, 500):
        await repository.apply_many(changes[offset : offset + 500])
    many = (total - total // 4) / (time.perf_counter() - start)
    print(f"  apply one by one:        {single:10.0f} changes/s")
    print(f"  apply_many (500/call):   {many:10.0f} changes/s")


async def main() -> None:
    run = f"bench-{uuid.uuid4().hex[:8]}"
    metrics = BcsMetrics(CollectorRegistry())
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    redis_repository = RedisBatchStateRepository(
        client,
        ttl_seconds=3600,
        metrics=metrics,
        breaker=CircuitBreaker("redis", 5, 10.0),
        key_prefix=run,
    )
    try:
        await bench(f"Redis ({REDIS_URL})", redis_repository, run)
        try:
            pool = await asyncpg.create_pool(DATABASE_URL, min_size=1, max_size=10, timeout=2)
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"\nRedis + PostgreSQL: skipped, {DATABASE_URL} not reachable ({exc})")
            return
        schema = run.replace("-", "_")
        try:
            async with pool.acquire() as connection:
                await ensure_schema(connection, schema)
            record = PostgresBatchRecord(
                pool, schema=schema, metrics=metrics, breaker=CircuitBreaker("postgresql", 5, 10.0)
            )
            durable = DurableBatchStateRepository(redis_repository, record, metrics)
            await bench("Redis + PostgreSQL record", durable, run + "-d")
        finally:
            async with pool.acquire() as connection:
                await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await pool.close()
    finally:
        keys = [key async for key in client.scan_iter(match=f"{run}:*", count=1000)]
        if keys:
            await client.unlink(*keys)
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
