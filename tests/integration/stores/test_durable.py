"""The Redis + PostgreSQL repository: what it answers when one store failed part way, and how it
reports its health."""

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from structlog.testing import capture_logs

from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchChange,
    BatchCounts,
    RosterSource,
)
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.health import ComponentHealth, HealthReporters, HealthState
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.durable import (
    DurableBatchStateRepository,
)
from batch_conductor_service.stores.postgres.record import PostgresBatchRecord
from batch_conductor_service.stores.redis.store import RedisBatchStateRepository
from tests.integration.stores.builders import essays, roster
from tests.integration.stores.conftest import make_record, make_redis_repository

OK = True
APPLIED, DUPLICATE = ApplyResult.APPLIED, ApplyResult.DUPLICATE


async def apply(repository: DurableBatchStateRepository, change: BatchChange) -> ApplyResult:
    (result,) = await repository.apply([change])
    return result


def succeeded(counts: BatchCounts | None, step: str = "spellcheck") -> int:
    assert counts is not None
    return counts.counts_for(step).succeeded


async def test_a_change_recorded_before_redis_failed_counts_as_applied_when_redis_takes_it(
    redis_client: Redis,
    metrics: BcsMetrics,
    key_prefix: str,
    pg_pool: asyncpg.Pool,
    pg_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repository = DurableBatchStateRepository(
        make_redis_repository(redis_client, metrics, key_prefix),
        make_record(pg_pool, pg_schema, metrics),
        metrics,
    )
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await apply(repository, essays(batch, "spellcheck", OK, "e1"))
    original_execute = Pipeline.execute
    failures = 1

    async def fail_once(self: Pipeline, raise_on_error: bool = True) -> Any:
        nonlocal failures
        if self.watching and failures:
            failures -= 1
            raise RedisConnectionError("connection reset by peer")
        return await original_execute(self, raise_on_error)

    monkeypatch.setattr(Pipeline, "execute", fail_once)
    late = essays(batch, "spellcheck", OK, "e2")
    with pytest.raises(StateStoreUnavailableError):
        await apply(repository, late)  # recorded in PostgreSQL, not in Redis
    # Redis is behind the record now: a read answers from the record (and repairs Redis).
    assert succeeded(await repository.counts(batch)) == 2

    assert await apply(repository, late) is ApplyResult.APPLIED
    assert succeeded(await repository.counts(batch)) == 2
    assert await apply(repository, late) is ApplyResult.DUPLICATE


class SlowStore:
    def __init__(self, name: str, seconds: float) -> None:
        self._name = name
        self._seconds = seconds

    async def health(self) -> dict[str, ComponentHealth]:
        await asyncio.sleep(self._seconds)
        return {self._name: ComponentHealth(HealthState.OK)}


def durable_over(redis: SlowStore, record: SlowStore, metrics: BcsMetrics) -> Any:
    return DurableBatchStateRepository(redis, record, metrics)  # type: ignore[arg-type]


async def test_both_stores_are_checked_side_by_side_within_the_health_timeout(
    metrics: BcsMetrics,
) -> None:
    # Each check alone fits the timeout; one after the other they would not.
    repository = durable_over(SlowStore("redis", 0.3), SlowStore("postgresql", 0.3), metrics)
    checks = await HealthReporters(repository, timeout_seconds=0.5).collect()
    assert {name: check.state for name, check in checks.items()} == {
        "redis": HealthState.OK,
        "postgresql": HealthState.OK,
    }


async def test_a_repository_that_does_not_answer_in_time_shows_as_the_repository(
    metrics: BcsMetrics,
) -> None:
    repository = durable_over(SlowStore("redis", 5), SlowStore("postgresql", 5), metrics)
    checks = await HealthReporters(repository, timeout_seconds=0.05).collect()
    assert list(checks) == ["repository"]
    assert checks["repository"].state is HealthState.UNHEALTHY


async def test_one_event_applied_by_two_replicas_at_once_is_counted_applied_once(
    redis_client: Redis,
    key_prefix: str,
    pg_pool: asyncpg.Pool,
    pg_schema: str,
) -> None:
    def replica() -> DurableBatchStateRepository:
        metrics = BcsMetrics(CollectorRegistry())
        return DurableBatchStateRepository(
            make_redis_repository(redis_client, metrics, key_prefix),
            make_record(pg_pool, pg_schema, metrics),
            metrics,
        )

    first, second = replica(), replica()
    for _ in range(20):
        batch = f"batch-{uuid.uuid4().hex[:8]}"
        change = essays(batch, "spellcheck", OK, "e1")
        results = await asyncio.gather(apply(first, change), apply(second, change))
        assert sorted(results) == [ApplyResult.APPLIED, ApplyResult.DUPLICATE]


def _durable(
    redis_client: Redis, key_prefix: str, pg_pool: asyncpg.Pool, pg_schema: str
) -> tuple[DurableBatchStateRepository, RedisBatchStateRepository]:
    metrics = BcsMetrics(CollectorRegistry())
    redis = make_redis_repository(redis_client, metrics, key_prefix)
    record = make_record(pg_pool, pg_schema, metrics)
    return DurableBatchStateRepository(redis, record, metrics), redis


async def test_the_record_gives_each_batch_its_versions_before_and_after_the_call(
    pg_pool: asyncpg.Pool, pg_schema: str, metrics: BcsMetrics
) -> None:
    record = make_record(pg_pool, pg_schema, metrics)
    seen = essays("seen", "spellcheck", OK, "e1")
    await record.record([seen])
    repeat = essays("new", "spellcheck", OK, "e1")
    recorded = await record.record(
        [
            repeat,
            repeat,  # a repeat within the call is one event
            essays("new", "spellcheck", OK, "e2"),
            essays("seen", "spellcheck", OK, "e2"),  # the batch had an event before
            seen,  # only a duplicate
        ]
    )
    assert recorded.results == [APPLIED, DUPLICATE, APPLIED, APPLIED, DUPLICATE]
    versions = {b: (r.previous_version, r.version) for b, r in recorded.batches.items()}
    assert versions == {"new": (0, 1), "seen": (1, 2)}
    again = await record.record([repeat])
    assert {b: (r.previous_version, r.version) for b, r in again.batches.items()} == {"new": (1, 1)}


async def test_a_new_batch_goes_to_redis_without_a_read_of_the_record_and_an_expired_one_is_rebuilt(
    redis_client: Redis,
    key_prefix: str,
    pg_pool: asyncpg.Pool,
    pg_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    durable, redis = _durable(redis_client, key_prefix, pg_pool, pg_schema)
    loads: list[str] = []
    load = PostgresBatchRecord.load

    async def counted_load(self: PostgresBatchRecord, batch_id: str, **options: Any) -> Any:
        loads.append(batch_id)
        return await load(self, batch_id, **options)

    monkeypatch.setattr(PostgresBatchRecord, "load", counted_load)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await durable.apply(
        [roster(batch, RosterSource.REGISTERED, "e1", "e2"), essays(batch, "spellcheck", OK, "e1")]
    )
    assert loads == []
    assert succeeded((await redis.read_counts(batch)).counts) == 1

    keys = redis.keys(batch)
    await redis_client.delete(keys.facts, keys.outcomes)  # expired in Redis, kept in the record
    await apply(durable, essays(batch, "spellcheck", OK, "e2"))
    assert loads == [batch]
    rebuilt = (await redis.read_counts(batch)).counts
    assert succeeded(rebuilt) == 2
    assert rebuilt is not None
    assert rebuilt.roster_size == 2


async def test_two_replicas_starting_one_batch_at_once_leave_all_of_it_in_redis(
    redis_client: Redis, key_prefix: str, pg_pool: asyncpg.Pool, pg_schema: str
) -> None:
    (first, redis), (second, _) = (
        _durable(redis_client, key_prefix, pg_pool, pg_schema) for _ in range(2)
    )
    for _ in range(20):
        batch = f"batch-{uuid.uuid4().hex[:8]}"
        await asyncio.gather(
            first.apply(
                [roster(batch, RosterSource.REGISTERED, "e1"), essays(batch, "nlp", OK, "e1")]
            ),
            second.apply([essays(batch, "spellcheck", OK, "e2")]),
        )
        # Read from Redis alone: the durable repository would repair what is missing.
        stored = (await redis.read_counts(batch)).counts
        assert stored is not None
        assert stored.roster_size == 1
        assert succeeded(stored, "nlp") == 1
        assert succeeded(stored, "spellcheck") == 1


async def test_a_batch_neither_store_holds_answers_unknown_without_a_warning(
    redis_client: Redis, key_prefix: str, pg_pool: asyncpg.Pool, pg_schema: str
) -> None:
    # Its rebuild finds nothing to load: that is no rival write, and no reason to warn.
    durable, _ = _durable(redis_client, key_prefix, pg_pool, pg_schema)
    with capture_logs() as logs:
        counts = await durable.counts(f"batch-{uuid.uuid4().hex[:8]}")
    assert counts.is_empty
    assert [line for line in logs if line["log_level"] == "warning"] == []
