"""A call's changes to many batches in one transaction on one Redis server: the same state and
results as the in-memory store (the domain's merge), three round trips whatever the number of
batches, and a rival write to one batch costs a retry, never a change."""

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchFacts,
    RecordedBatch,
    RosterSource,
)
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from batch_conductor_service.stores.redis import store
from batch_conductor_service.stores.redis.layout import ADD_FACTS_SCRIPT, joined_names
from tests.integration.stores.builders import change_builders, essays, roster, view
from tests.integration.stores.conftest import (
    TTL_SECONDS,
    CountingConnection,
    counting_redis,
    make_redis_repository,
    rival_writes_before_every_exec,
)
from tests.support.change_strategies import fact_names
from tests.support.hypothesis_profiles import examples

APPLIED = ApplyResult.APPLIED
changes = change_builders([f"e{i}" for i in range(5)], ["spellcheck", "nlp"], max_essays=4)


@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    writes=st.lists(
        st.lists(st.tuples(st.integers(0, 3), changes), min_size=1, max_size=10),
        min_size=1,
        max_size=3,
    ),
    cap=st.sampled_from([1, 5, store.MAX_MEMBERS_PER_TRANSACTION]),
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
    # A small cap cuts a call into several transactions side by side.
    monkeypatch.setattr(store, "MAX_MEMBERS_PER_TRANSACTION", cap)
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
        assert await repository.apply(built) == await reference.apply(built)
    for batch in range(4):
        batch_id = f"batch-{run}-{batch}"
        assert view(await repository.counts(batch_id)) == view(await reference.counts(batch_id))


async def test_a_call_over_forty_batches_takes_three_round_trips(
    metrics: BcsMetrics, key_prefix: str
) -> None:
    async with counting_redis() as client:
        repository = make_redis_repository(client, metrics, key_prefix)
        run = uuid.uuid4().hex[:8]
        fetch = [essays(f"batch-{run}-{i % 40}", "spellcheck", True, f"e{i}") for i in range(400)]
        await repository.apply([essays(f"batch-{run}-warm", "spellcheck", True, "e1")])
        CountingConnection.sends = 0
        results = await repository.apply(fetch)
        # WATCH, the read of what the merge needs, MULTI + the writes + EXEC.
        assert CountingConnection.sends == 3
        assert results == [APPLIED] * len(fetch)
        keys = [key async for key in client.scan_iter(match=f"{key_prefix}*", count=1000)]
        if keys:
            await client.unlink(*keys)


async def test_a_rival_write_to_one_batch_leaves_every_change_applied_once(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    run = uuid.uuid4().hex[:8]
    contested, calm = f"batch-{run}-contested", f"batch-{run}-calm"
    fetch = [
        roster(contested, RosterSource.REGISTERED, "e1", "e2"),
        roster(calm, RosterSource.REGISTERED, "e3"),
        essays(contested, "spellcheck", True, "e1"),
        essays(calm, "spellcheck", False, "e3"),
    ]
    async with rival_writes_before_every_exec(monkeypatch, repository.keys(contested).facts):
        assert await repository.apply(fetch) == [APPLIED] * len(fetch)
        assert await repository.apply(fetch[:2]) == [ApplyResult.DUPLICATE] * 2
    reference = InMemoryBatchStateRepository(TTL_SECONDS)
    await reference.apply(fetch)
    for batch in (contested, calm):
        assert view(await repository.counts(batch)) == view(await reference.counts(batch))


async def test_under_the_record_only_batches_redis_holds_at_the_right_version_are_written(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    run = uuid.uuid4().hex[:8]
    held, lost, behind, fresh = (f"batch-{run}-{n}" for n in ("held", "lost", "behind", "fresh"))

    def added(batch: str) -> BatchFacts:
        return BatchFacts(batch, succeeded={"spellcheck": {"e1"}}, last_event_at=None)

    first = {
        b: RecordedBatch(0, 1, BatchFacts(b, rosters={RosterSource.READY: {"e1"}}))
        for b in (held, lost, behind)
    }
    assert await repository.apply_recorded(first) == set()
    await redis_client.delete(repository.keys(lost).outcomes)
    second = {
        held: RecordedBatch(1, 2, added(held)),
        lost: RecordedBatch(1, 2, added(lost)),
        behind: RecordedBatch(2, 3, added(behind)),  # Redis missed version 2
        fresh: RecordedBatch(0, 1, added(fresh)),
    }
    assert await repository.apply_recorded(second) == {lost, behind}
    lost_reports = metrics.registry.get_sample_value(
        "bcs_repository_errors_total", {"store": "redis", "operation": "lost_keys"}
    )
    assert lost_reports == 1
    for batch, version in ((held, 2), (fresh, 1)):
        reply = await repository.read_counts(batch)
        assert reply.version == version
        assert reply.counts is not None
        assert reply.counts.counts_for("spellcheck").succeeded == 1
    assert (await repository.read_counts(behind)).version == 1  # left for the record to rebuild
    assert (await repository.read_counts(lost)).lost


@settings(
    max_examples=examples(50),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(names=st.lists(fact_names, min_size=1, max_size=60, unique=True))
async def test_the_fact_script_adds_exactly_the_names_it_is_given(
    redis_client: Redis, key_prefix: str, names: list[str]
) -> None:
    key = f"{key_prefix}:{{facts}}"
    await redis_client.delete(key)
    await redis_client.eval(ADD_FACTS_SCRIPT, 1, key, joined_names(names))
    assert await redis_client.hgetall(key) == dict.fromkeys(names, "")


async def test_the_fact_script_adds_more_names_than_one_lua_unpack_holds(
    redis_client: Redis, key_prefix: str
) -> None:
    # Lua's unpack() holds about 8,000 values: 9,001 names are 18,002, in five HSETs.
    names = [f"reg:essay-{i}" for i in range(9_001)]
    key = f"{key_prefix}:{{facts}}"
    await redis_client.eval(ADD_FACTS_SCRIPT, 1, key, joined_names(names))
    assert set(await redis_client.hkeys(key)) == set(names)
