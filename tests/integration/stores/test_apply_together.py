"""A fetch's changes to many batches in one transaction on one Redis server: the same state and
results as the in-memory store, three round trips whatever the number of batches, and a rival
write to one batch costs nothing but a batch-by-batch rewrite."""

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from batch_conductor_service.domain.batch_state import ApplyResult, EssayOutcome, RosterSource
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from batch_conductor_service.stores.redis import apply_together
from tests.integration.stores.builders import change_builders, essays, roster, view
from tests.integration.stores.conftest import (
    TTL_SECONDS,
    CountingConnection,
    counting_redis,
    make_redis_repository,
    rival_writes_before_every_exec,
)

APPLIED = ApplyResult.APPLIED
changes = change_builders([f"e{i}" for i in range(5)], ["spellcheck", "nlp"], max_essays=4)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    writes=st.lists(
        st.lists(st.tuples(st.integers(0, 3), changes), min_size=1, max_size=10),
        min_size=1,
        max_size=3,
    ),
    cap=st.sampled_from([1, 5, apply_together.MAX_MEMBERS_PER_TRANSACTION]),
    redelivered=st.booleans(),
)
async def test_many_batches_at_once_read_back_as_the_memory_store_reads_them(
    redis_client: Redis,
    metrics: BcsMetrics,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    writes: list[list[tuple[int, Any]]],
    cap: int,
    redelivered: bool,
) -> None:
    # A small cap cuts a fetch into several transactions side by side.
    monkeypatch.setattr(apply_together, "MAX_MEMBERS_PER_TRANSACTION", cap)
    run = uuid.uuid4().hex[:8]
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    reference = InMemoryBatchStateRepository(TTL_SECONDS)
    sent: list[Any] = []
    for write in writes:
        built = [build(f"batch-{run}-{batch}") for batch, build in write]
        if redelivered:
            # Repeats within this write, and of earlier writes (which Redis already holds).
            built += built[:2] + sent[-3:]
        sent += built
        assert await repository.apply_many(built) == await reference.apply_many(built)
    for batch in range(4):
        batch_id = f"batch-{run}-{batch}"
        assert view(await repository.get_snapshot(batch_id)) == view(
            await reference.get_snapshot(batch_id)
        )


async def test_a_fetch_over_forty_batches_takes_three_round_trips(
    metrics: BcsMetrics, key_prefix: str
) -> None:
    async with counting_redis() as client:
        repository = make_redis_repository(client, metrics, key_prefix)
        run = uuid.uuid4().hex[:8]
        fetch = [
            essays(f"batch-{run}-{i % 40}", "spellcheck", EssayOutcome.SUCCEEDED, f"e{i}")
            for i in range(400)
        ]
        CountingConnection.sends = 0
        results = await repository.apply_many(fetch)
        # WATCH, the read of which event ids are known, MULTI + the writes + EXEC.
        assert CountingConnection.sends == 3
        assert results == [APPLIED] * len(fetch)
        keys = [key async for key in client.scan_iter(match=f"{key_prefix}*", count=1000)]
        if keys:
            await client.unlink(*keys)


async def test_a_rival_write_to_one_batch_leaves_every_change_applied_once(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix, backoff_seconds=0.001)
    run = uuid.uuid4().hex[:8]
    contested, calm = f"batch-{run}-contested", f"batch-{run}-calm"
    fetch = [
        roster(contested, RosterSource.REGISTERED, "e1", "e2"),
        roster(calm, RosterSource.REGISTERED, "e3"),
        essays(contested, "spellcheck", EssayOutcome.SUCCEEDED, "e1"),
        essays(calm, "spellcheck", EssayOutcome.FAILED, "e3"),
    ]
    async with rival_writes_before_every_exec(monkeypatch, repository.keys(contested).events):
        assert await repository.apply_many(fetch) == [APPLIED] * len(fetch)
        assert await repository.apply_many(fetch[:2]) == [ApplyResult.DUPLICATE] * 2
    retried = metrics.registry.get_sample_value(
        "bcs_repository_atomic_retries_total", {"operation": "apply_together"}
    )
    assert retried == 2  # the fetch, then the redelivery
    reference = InMemoryBatchStateRepository(TTL_SECONDS)
    await reference.apply_many(fetch)
    for batch in (contested, calm):
        assert view(await repository.get_snapshot(batch)) == view(
            await reference.get_snapshot(batch)
        )


async def test_writes_that_need_the_batch_held_skip_only_the_batches_not_held(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    run = uuid.uuid4().hex[:8]
    held, lost, unknown = (f"batch-{run}-{name}" for name in ("held", "lost", "unknown"))
    await repository.apply_many(
        [roster(held, RosterSource.REGISTERED, "e1"), roster(lost, RosterSource.REGISTERED, "e1")]
    )
    await redis_client.delete(repository.keys(lost).roster(RosterSource.REGISTERED))
    fetch = [essays(b, "spellcheck", EssayOutcome.SUCCEEDED, "e1") for b in (held, lost, unknown)]
    assert await repository.apply_many_to_held(fetch) == [APPLIED, None, None]
    lost_reports = metrics.registry.get_sample_value(
        "bcs_repository_errors_total", {"store": "redis", "operation": "lost_keys"}
    )
    assert lost_reports == 1
    assert (await repository.get_snapshot(held)).succeeded_for("spellcheck") == {"e1"}
    for batch in (lost, unknown):  # nothing written: each reads as unknown
        assert view(await repository.get_snapshot(batch)) == view(
            await InMemoryBatchStateRepository(TTL_SECONDS).get_snapshot(batch)
        )
