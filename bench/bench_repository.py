"""Repository speed against the real Redis (and PostgreSQL when reachable): the counts read
/define makes, for 10 vs 10,000 essays (the first after a write, and later ones), and apply
throughput one change a call vs 500 a call.

Prints figures only. Uses its own key prefix and schema and removes them afterwards.
Environment: BCS_BENCH_REDIS_URL, BCS_BENCH_DATABASE_URL; BCS_BENCH_REPOSITORY_SCALE (default
1) scales the rounds and changes down for a quick run (0.1: a tenth).
"""

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from service_process import DATABASE_URL, REDIS_URL
from stores import postgres_reachable, production_stores, seed_batch

from batch_conductor_service.domain.batch_state import BatchChange, EssayResult
from batch_conductor_service.protocols import BatchStateRepositoryProtocol

SCALE = float(os.environ.get("BCS_BENCH_REPOSITORY_SCALE", "1"))
NOW = datetime.now(UTC)


def scaled(n: int) -> int:
    return max(1, int(n * SCALE))


def essay_event(batch: str, essay: str, n: int) -> BatchChange:
    return BatchChange(
        batch, NOW, f"{batch}-{n}", essays=(EssayResult(essay, "spellcheck", succeeded=True),)
    )


async def median_ms(operation: Callable[[], Awaitable[object]], rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        await operation()
        timings.append(1000 * (time.perf_counter() - start))
    return statistics.median(timings)


async def bench(name: str, repository: BatchStateRepositoryProtocol) -> None:
    print(f"\n{name}")
    run = uuid.uuid4().hex[:8]
    for essays, rounds in ((10, scaled(300)), (10_000, scaled(20))):
        batch = f"{run}-read-{essays}"
        await seed_batch(repository, batch, essays, steps=("spellcheck", "nlp"))
        # The first read after a write derives the batch's counts; later ones read them.
        first = await median_ms(lambda b=batch: repository.counts(b), 1)  # type: ignore[misc]
        ms = await median_ms(lambda b=batch: repository.counts(b), rounds)  # type: ignore[misc]
        print(
            f"  counts read, {essays:>6} essays: first after a write {first:8.3f} ms, "
            f"then median {ms:8.3f} ms"
        )
    total = scaled(2000)
    # Spread over 20 batches, as a fetched Kafka batch usually is.
    changes = [essay_event(f"{run}-w{i % 20}", f"essay-{i}", i) for i in range(total)]
    start = time.perf_counter()
    for change in changes[: total // 4]:
        await repository.apply([change])
    single = max(1, total // 4) / (time.perf_counter() - start)
    start = time.perf_counter()
    for offset in range(total // 4, total, 500):
        await repository.apply(changes[offset : offset + 500])
    many = (total - total // 4) / (time.perf_counter() - start)
    print(f"  apply, one change a call:   {single:10.0f} changes/s")
    print(f"  apply, 500 changes a call:  {many:10.0f} changes/s")


async def main() -> None:
    async with production_stores(with_postgres=False) as (container, _):
        await bench(f"Redis ({REDIS_URL})", await container.get(BatchStateRepositoryProtocol))
    unreachable = await postgres_reachable()
    if unreachable is not None:
        print(f"\nRedis + PostgreSQL: skipped, {unreachable}")
        return
    async with production_stores(with_postgres=True) as (container, _):
        repository = await container.get(BatchStateRepositoryProtocol)
        await bench(f"Redis + PostgreSQL record ({DATABASE_URL})", repository)


if __name__ == "__main__":
    asyncio.run(main())
