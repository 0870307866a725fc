"""Redis specifics against the real server: concurrency, the WATCH retry and fallback paths,
TTLs, and one round trip per snapshot whatever the batch size."""

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    OutOfMemoryError,
    RedisError,
    TryAgainError,
)

from batch_conductor_service.domain.batch_state import ApplyResult, EssayOutcome, RosterSource
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.stores.circuit_breaker import CircuitBreaker, CircuitState
from batch_conductor_service.stores.durable import (
    DurableBatchStateRepository,
)
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
)
from batch_conductor_service.stores.redis.repository import (
    RedisBatchStateRepository,
)
from common_core.enums import BatchPhaseStatus
from tests.integration.stores.builders import essays, outcome, roster, view
from tests.integration.stores.conftest import (
    TTL_SECONDS,
    CountingConnection,
    counting_redis,
    make_record,
    make_redis_repository,
    rival_writes_before_every_exec,
)

OK = EssayOutcome.SUCCEEDED
FAILED = EssayOutcome.FAILED


def counter(metrics: BcsMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def fifty_writers(batch: str) -> list[Any]:
    """Essay i fails in writer i and succeeds in writer i+25 for the first 25 essays, so the
    outcome depends on every write landing."""
    changes = [essays(batch, "spellcheck", FAILED, f"e{i}") for i in range(50)]
    changes += [essays(batch, "spellcheck", OK, f"e{i}") for i in range(25)]
    changes.append(roster(batch, RosterSource.READY, *(f"e{i}" for i in range(50))))
    return changes


async def assert_fifty_writers_end_exact(repository: BatchStateRepositoryProtocol) -> None:
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    changes = fifty_writers(batch)
    results = await asyncio.gather(*(repository.apply(change) for change in changes))
    assert results.count(ApplyResult.APPLIED) == len(changes)
    snapshot = await repository.get_snapshot(batch)
    assert len(snapshot.roster or ()) == 50
    assert snapshot.succeeded_for("spellcheck") == {f"e{i}" for i in range(25)}
    assert snapshot.failed_for("spellcheck") == {f"e{i}" for i in range(25, 50)}


async def test_fifty_concurrent_writers_on_one_batch_end_with_exact_counts(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    await assert_fifty_writers_end_exact(repository)
    # 75 writers racing on one WATCHed key: conflicts are certain, and were retried.
    assert counter(metrics, "bcs_repository_atomic_retries_total", operation="apply") > 0


async def test_fifty_concurrent_writers_end_exact_with_the_postgresql_record(
    redis_client: Redis,
    metrics: BcsMetrics,
    key_prefix: str,
    pg_pool: asyncpg.Pool,
    pg_schema: str,
) -> None:
    redis_repository = make_redis_repository(redis_client, metrics, key_prefix)
    record = make_record(pg_pool, pg_schema, metrics)
    await assert_fifty_writers_end_exact(
        DurableBatchStateRepository(redis_repository, record, metrics)
    )


async def test_the_fallback_after_the_last_watch_conflict_loses_nothing(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix, backoff_seconds=0.001)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    changes = [
        *fifty_writers(batch),
        outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_WITH_FAILURES, 5),
        outcome(batch, "spellcheck", BatchPhaseStatus.FAILED_CRITICALLY, 1),
    ]
    duplicate = changes[0]
    async with rival_writes_before_every_exec(monkeypatch, repository.keys(batch).events):
        results = [await repository.apply(change) for change in changes]
        assert await repository.apply(duplicate) is ApplyResult.DUPLICATE
    assert results == [ApplyResult.APPLIED] * len(changes)
    assert (
        counter(metrics, "bcs_repository_fallback_writes_total", operation="apply")
        == len(changes) + 1
    )
    # Four retries per change before each fallback.
    assert counter(metrics, "bcs_repository_atomic_retries_total", operation="apply") == 4 * (
        len(changes) + 1
    )
    reference = InMemoryBatchStateRepository(ttl_seconds=TTL_SECONDS)
    await reference.apply_many(changes)
    assert view(await repository.get_snapshot(batch)) == view(await reference.get_snapshot(batch))


async def test_every_key_of_a_batch_has_the_ttl(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply_many(
        [
            roster(batch, RosterSource.REGISTERED, "e1", "e2"),
            roster(batch, RosterSource.READY, "e1"),
            essays(batch, "spellcheck", OK, "e1"),
            essays(batch, "spellcheck", FAILED, "e2"),
            outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_WITH_FAILURES, 1),
        ]
    )
    keys = [key async for key in redis_client.scan_iter(match=f"{key_prefix}:*")]
    assert sorted(keys) == sorted(repository.keys(batch).all)
    for key in keys:
        assert f"{{{batch}}}" in key
        assert 0 < await redis_client.ttl(key) <= TTL_SECONDS


async def test_a_write_refreshes_the_ttl_of_every_key(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply(roster(batch, RosterSource.READY, "e1"))
    await redis_client.expire(repository.keys(batch).roster(RosterSource.READY), 10)
    await repository.apply(essays(batch, "spellcheck", OK, "e1"))
    assert await redis_client.ttl(repository.keys(batch).roster(RosterSource.READY)) > 10


@pytest.mark.parametrize("essay_count", [10, 10_000])
async def test_a_snapshot_takes_one_round_trip_whatever_the_batch_size(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str, essay_count: int
) -> None:
    writer = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    ids = [f"essay-{i}" for i in range(essay_count)]
    await writer.apply_many(
        [
            roster(batch, RosterSource.REGISTERED, *ids),
            roster(batch, RosterSource.READY, *ids),
            essays(batch, "spellcheck", OK, *ids[: essay_count // 2]),
            essays(batch, "spellcheck", FAILED, *ids[essay_count // 2 :]),
            essays(batch, "nlp", OK, *ids),
            outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_WITH_FAILURES, 1),
        ]
    )
    async with counting_redis() as counted:
        reader = make_redis_repository(counted, metrics, key_prefix)
        CountingConnection.sends = 0
        snapshot = await reader.get_snapshot(batch)
        round_trips = CountingConnection.sends
    assert len(snapshot.roster or ()) == essay_count
    assert len(snapshot.succeeded_for("nlp")) == essay_count
    assert round_trips == 1


@pytest.mark.parametrize(
    "error",
    [OutOfMemoryError, ClusterDownError, MasterDownError, TryAgainError, BusyLoadingError],
)
async def test_redis_errors_that_mean_unavailable_open_the_breaker(
    metrics: BcsMetrics, monkeypatch: pytest.MonkeyPatch, error: type[RedisError]
) -> None:
    from fakeredis import FakeAsyncRedis

    async def refuse(self: Pipeline, raise_on_error: bool = True) -> Any:
        raise error("the server refused")

    monkeypatch.setattr(Pipeline, "execute", refuse)
    breaker = CircuitBreaker("redis", failure_threshold=2, reset_seconds=60)
    repository = RedisBatchStateRepository(
        FakeAsyncRedis(decode_responses=True), ttl_seconds=60, metrics=metrics, breaker=breaker
    )
    with pytest.raises(StateStoreUnavailableError, match=error.__name__):
        await repository.get_snapshot("b1")
    with pytest.raises(StateStoreUnavailableError, match=error.__name__):
        await repository.apply(essays("b1", "spellcheck", OK, "e1"))
    assert breaker.state is CircuitState.OPEN
    assert counter(metrics, "bcs_repository_errors_total", store="redis", operation="read") == 1
    assert counter(metrics, "bcs_repository_errors_total", store="redis", operation="apply") == 1


async def test_a_member_that_does_not_parse_is_skipped_and_counted_not_raised(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply_many(
        [
            essays(batch, "spellcheck", OK, "e1"),
            outcome(batch, "nlp", BatchPhaseStatus.FAILED_CRITICALLY, 1),
        ]
    )
    keys = repository.keys(batch)
    await redis_client.sadd(keys.succeeded, "no separator")
    await redis_client.sadd(keys.outcomes, "nlp", "nlp\x1fnot a time\x1ffailed_critically")
    await redis_client.sadd(keys.outcomes, "nlp\x1f2025-06-21T12:00:00+00:00\x1fno such status")
    snapshot = await repository.get_snapshot(batch)
    assert view(snapshot)["succeeded"] == {"spellcheck": ["e1"]}
    assert snapshot.batch_outcomes["nlp"].status is BatchPhaseStatus.FAILED_CRITICALLY
    assert counter(metrics, "bcs_repository_errors_total", store="redis", operation="parse") == 4
