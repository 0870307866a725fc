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

from batch_conductor_service.domain.batch_state import ApplyResult, EssayOutcome
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.health import ComponentHealth, HealthReporters, HealthState
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.durable import (
    DurableBatchStateRepository,
)
from tests.integration.stores.builders import essays
from tests.integration.stores.conftest import make_record, make_redis_repository

OK = EssayOutcome.SUCCEEDED


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
    await repository.apply(essays(batch, "spellcheck", OK, "e1"))
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
        await repository.apply(late)  # recorded in PostgreSQL, not in Redis
    # Redis is behind the record now: a read answers from the record (and repairs Redis).
    assert (await repository.get_snapshot(batch)).succeeded_for("spellcheck") == {"e1", "e2"}

    assert await repository.apply(late) is ApplyResult.APPLIED
    assert (await repository.get_snapshot(batch)).succeeded_for("spellcheck") == {"e1", "e2"}
    assert await repository.apply(late) is ApplyResult.DUPLICATE


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
        results = await asyncio.gather(first.apply(change), second.apply(change))
        assert sorted(results) == [ApplyResult.APPLIED, ApplyResult.DUPLICATE]
