"""Every store's counts (what /define reads) agree with the counts of its own snapshot, read
after any sequence of writes, including reads between them (Redis keeps the counts it makes
until the next write), and the Redis read takes one round trip whatever the batch size."""

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from batch_conductor_service.domain.batch_counts import BatchCounts
from batch_conductor_service.domain.batch_state import (
    BatchStateChange,
    EssayOutcome,
    RosterSource,
)
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.factory import make_redis_client
from batch_conductor_service.wiring.settings import Settings
from tests.integration.stores.builders import change_builders, essays, roster
from tests.integration.stores.conftest import (
    REDIS_URL,
    CountingConnection,
    StoreUnderTest,
    counting_redis,
    make_redis_repository,
    rival_writes_before_every_exec,
)

ESSAYS = [f"e{i}" for i in range(5)]
STEPS = ["spellcheck", "nlp"]

# A write is a change builder; None stands for "read the counts now".
writes = st.one_of(change_builders(ESSAYS, STEPS, max_essays=4), st.none())


def counted(snapshot_counts: BatchCounts) -> dict[str, Any]:
    """Counts compared by meaning: a step with no essay outcomes is the same as no entry."""
    return {
        "roster": (snapshot_counts.roster_size, snapshot_counts.roster_source),
        "steps": {s: c for s, c in snapshot_counts.steps.items() if c.succeeded or c.failed},
        "outcomes": dict(snapshot_counts.batch_outcomes),
    }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(writes, max_size=8))
async def test_counts_agree_with_the_snapshot_after_any_writes(
    store: StoreUnderTest, steps: list[Any]
) -> None:
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    repository = store.repository
    for step in [*steps, None]:
        if step is not None:
            change: BatchStateChange = step(batch)
            await repository.apply(change)
            continue
        expected = BatchCounts.of(await repository.get_snapshot(batch))
        assert counted(await repository.get_counts(batch)) == counted(expected)


async def test_a_fallback_write_drops_the_counts_kept_before_it(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix, backoff_seconds=0.001)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply(roster(batch, RosterSource.READY, "e1", "e2"))
    await repository.apply(essays(batch, "spellcheck", EssayOutcome.SUCCEEDED, "e1"))
    before = await repository.get_counts(batch)
    assert before.counts_for("spellcheck").roster_succeeded == 1
    async with rival_writes_before_every_exec(monkeypatch, repository.keys(batch).events):
        await repository.apply(essays(batch, "spellcheck", EssayOutcome.FAILED, "e2"))
    after = (await repository.get_counts(batch)).counts_for("spellcheck")
    assert (after.roster_succeeded, after.roster_failed) == (1, 1)


async def test_counts_kept_past_the_sets_they_describe_are_dropped_by_the_next_write(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    # Found by test_store_differential: the batch's sets evicted (or expired early), its counts
    # hash left, then an event with no facts made the batch present again, and its old counts
    # answered for it.
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply(roster(batch, RosterSource.REGISTERED, "e1"))
    await repository.apply(essays(batch, "spellcheck", EssayOutcome.SUCCEEDED, "e1"))
    assert (await repository.get_counts(batch)).counts_for("spellcheck").roster_succeeded == 1
    keys = repository.keys(batch)
    await redis_client.delete(*keys.all)
    await repository.apply(essays(batch, "spellcheck", EssayOutcome.FAILED))  # names no essay
    after = await repository.get_counts(batch)
    assert after.roster_size is None
    assert after.counts_for("spellcheck").succeeded == 0


async def test_the_counts_have_the_ttl_of_the_batch(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply(essays(batch, "spellcheck", EssayOutcome.SUCCEEDED, "e1"))
    await repository.get_counts(batch)
    keys = repository.keys(batch)
    counts_ttl, batch_ttl = (
        await redis_client.pttl(keys.counts),
        await redis_client.pttl(keys.events),
    )
    # Taken from the batch's TTL when the counts were made; the two calls are apart by a moment.
    assert counts_ttl > 0
    assert abs(counts_ttl - batch_ttl) < 1000


@pytest.mark.parametrize("essay_count", [10, 10_000])
async def test_counts_take_one_round_trip_and_no_member_whatever_the_batch_size(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str, essay_count: int
) -> None:
    writer = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    ids = [f"essay-{i}" for i in range(essay_count)]
    half = essay_count // 2
    await writer.apply_many(
        [
            roster(batch, RosterSource.READY, *ids),
            essays(batch, "spellcheck", EssayOutcome.SUCCEEDED, *ids[:half]),
            essays(batch, "spellcheck", EssayOutcome.FAILED, *ids[half:]),
        ]
    )
    async with counting_redis() as counting:
        reader = make_redis_repository(counting, metrics, key_prefix)
        for _ in range(2):  # counted where the sets are, then kept
            CountingConnection.sends = 0
            counts = await reader.get_counts(batch)
            assert CountingConnection.sends == 1
    assert counts.roster_size == essay_count
    spellcheck = counts.counts_for("spellcheck")
    assert (spellcheck.roster_succeeded, spellcheck.roster_failed) == (half, essay_count - half)


async def test_concurrent_reads_each_get_their_own_batch(store: StoreUnderTest) -> None:
    # Reads in flight together share one pipeline on Redis; each must still get its own answer.
    batches = [f"batch-{uuid.uuid4().hex[:8]}" for _ in range(12)]
    for size, batch in enumerate(batches):
        ids = ESSAYS[: size % len(ESSAYS)]
        await store.repository.apply(roster(batch, RosterSource.READY, *ESSAYS))
        if ids:
            await store.repository.apply(essays(batch, "nlp", EssayOutcome.SUCCEEDED, *ids))
    answers = await asyncio.gather(*(store.repository.get_counts(b) for b in [*batches, *batches]))
    for batch, counts in zip([*batches, *batches], answers, strict=True):
        expected = BatchCounts.of(await store.repository.get_snapshot(batch))
        assert counts.batch_id == batch
        assert counted(counts) == counted(expected)


async def _batches_with_results(
    store_key_prefix: str, client: Redis, metrics: BcsMetrics
) -> list[str]:
    writer = make_redis_repository(client, metrics, store_key_prefix)
    batches = [f"batch-{uuid.uuid4().hex[:8]}" for _ in range(6)]
    for size, batch in enumerate(batches):
        await writer.apply_many(
            [
                roster(batch, RosterSource.READY, *ESSAYS),
                essays(batch, "nlp", EssayOutcome.SUCCEEDED, *ESSAYS[: size % len(ESSAYS)]),
            ]
        )
    return batches


def _nlp_done(counts: BatchCounts) -> int:
    return counts.counts_for("nlp").roster_succeeded


async def test_reads_in_flight_together_are_one_send_and_survive_a_script_flush(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    batches = await _batches_with_results(key_prefix, redis_client, metrics)
    async with counting_redis() as counting:
        reader = make_redis_repository(counting, metrics, key_prefix)
        await reader.get_counts(batches[0])  # the script is cached on the server
        CountingConnection.sends = 0
        answers = await asyncio.gather(*(reader.get_counts(b) for b in batches))
        assert CountingConnection.sends == 1
        assert [_nlp_done(a) for a in answers] == [i % len(ESSAYS) for i in range(len(batches))]
        # NOSCRIPT comes back in each reply's place; each read is then sent again with EVAL.
        await counting.script_flush()
        answers = await asyncio.gather(*(reader.get_counts(b) for b in batches))
        assert [_nlp_done(a) for a in answers] == [i % len(ESSAYS) for i in range(len(batches))]


async def test_reads_in_flight_together_survive_a_pooled_connection_closed_by_the_server(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    # As after a Redis restart: the pool's idle connection is closed under it. The production
    # client retries once on a new connection, and a read must not fail for it.
    batches = await _batches_with_results(key_prefix, redis_client, metrics)
    client = make_redis_client(
        Settings(REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=key_prefix)  # type: ignore[call-arg]
    )
    try:
        reader = make_redis_repository(client, metrics, key_prefix)
        await reader.get_counts(batches[0])
        name = f"closed-{uuid.uuid4().hex[:8]}"
        await client.client_setname(name)
        killed = 0
        for entry in await redis_client.client_list():
            if entry["name"] == name:
                killed += await redis_client.client_kill_filter(_id=entry["id"])
        assert killed == 1
        answers = await asyncio.gather(*(reader.get_counts(b) for b in batches))
        assert [_nlp_done(a) for a in answers] == [i % len(ESSAYS) for i in range(len(batches))]
    finally:
        await client.aclose()
