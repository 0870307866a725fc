"""The counts Redis keeps for /define: dropped by every write that could change them (the
fallback's too, and one made after the facts they describe were lost), with the batch's TTL,
right for reads in flight together, and through a script flush or a closed connection."""

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from batch_conductor_service.domain.batch_state import BatchCounts, RosterSource
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from batch_conductor_service.stores.redis.connection import make_redis_client
from tests.integration.stores.builders import essays, roster, view
from tests.integration.stores.conftest import (
    REDIS_URL,
    TTL_SECONDS,
    StoreUnderTest,
    make_redis_repository,
    rival_writes_before_every_exec,
)

ESSAYS = [f"e{i}" for i in range(5)]


async def test_a_fallback_write_drops_the_counts_kept_before_it(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply([roster(batch, RosterSource.READY, "e1", "e2")])
    await repository.apply([essays(batch, "spellcheck", True, "e1")])
    before = await repository.counts(batch)
    assert before.counts_for("spellcheck").roster_succeeded == 1
    async with rival_writes_before_every_exec(monkeypatch, repository.keys(batch).facts):
        await repository.apply([essays(batch, "spellcheck", False, "e2")])
    after = (await repository.counts(batch)).counts_for("spellcheck")
    assert (after.roster_succeeded, after.roster_failed) == (1, 1)


async def test_counts_kept_past_the_facts_they_describe_are_dropped_by_the_next_write(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    # The batch's facts evicted (or expired early), its counts left, then an event with no
    # facts made the batch present again: its old counts must not answer for it.
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply([roster(batch, RosterSource.REGISTERED, "e1")])
    await repository.apply([essays(batch, "spellcheck", True, "e1")])
    assert (await repository.counts(batch)).counts_for("spellcheck").roster_succeeded == 1
    keys = repository.keys(batch)
    await redis_client.delete(keys.facts, keys.outcomes)
    await repository.apply([essays(batch, "spellcheck", False)])  # names no essay
    after = await repository.counts(batch)
    assert after.roster_size is None
    assert after.counts_for("spellcheck").succeeded == 0


async def test_the_counts_have_the_ttl_of_the_batch(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply([essays(batch, "spellcheck", True, "e1")])
    await repository.counts(batch)
    keys = repository.keys(batch)
    counts_ttl, batch_ttl = (
        await redis_client.pttl(keys.counts),
        await redis_client.pttl(keys.facts),
    )
    # Taken from the batch's TTL when the counts were made; the two calls are apart by a moment.
    assert counts_ttl > 0
    assert abs(counts_ttl - batch_ttl) < 1000


async def test_concurrent_reads_each_get_their_own_batch(store: StoreUnderTest) -> None:
    batches = [f"batch-{uuid.uuid4().hex[:8]}" for _ in range(12)]
    reference = InMemoryBatchStateRepository(ttl_seconds=TTL_SECONDS)
    for size, batch in enumerate(batches):
        changes = [roster(batch, RosterSource.READY, *ESSAYS)]
        if ids := ESSAYS[: size % len(ESSAYS)]:
            changes.append(essays(batch, "nlp", True, *ids))
        for repository in (store.repository, reference):
            await repository.apply(changes)
    answers = await asyncio.gather(*(store.repository.counts(b) for b in [*batches, *batches]))
    for batch, counts in zip([*batches, *batches], answers, strict=True):
        assert counts.batch_id == batch
        assert view(counts) == view(await reference.counts(batch))


async def _batches_with_results(key_prefix: str, client: Redis, metrics: BcsMetrics) -> list[str]:
    writer = make_redis_repository(client, metrics, key_prefix)
    batches = [f"batch-{uuid.uuid4().hex[:8]}" for _ in range(6)]
    for size, batch in enumerate(batches):
        await writer.apply(
            [
                roster(batch, RosterSource.READY, *ESSAYS),
                essays(batch, "nlp", True, *ESSAYS[: size % len(ESSAYS)]),
            ]
        )
    return batches


def _nlp_done(counts: BatchCounts) -> int:
    return counts.counts_for("nlp").roster_succeeded


async def test_reads_survive_a_script_flush(
    own_redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    batches = await _batches_with_results(key_prefix, own_redis_client, metrics)
    reader = make_redis_repository(own_redis_client, metrics, key_prefix)
    await reader.counts(batches[0])  # the script is cached on the server
    await own_redis_client.script_flush()
    answers = await asyncio.gather(*(reader.counts(b) for b in batches))
    assert [_nlp_done(a) for a in answers] == [i % len(ESSAYS) for i in range(len(batches))]


async def test_reads_survive_a_pooled_connection_closed_by_the_server(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    # As after a Redis restart: the pool's idle connection is closed under it. The production
    # client retries once on a new connection, and a read must not fail for it.
    batches = await _batches_with_results(key_prefix, redis_client, metrics)
    client = make_redis_client(REDIS_URL, cluster=False, max_connections=4, timeout_seconds=2.0)
    try:
        reader = make_redis_repository(client, metrics, key_prefix)
        await reader.counts(batches[0])
        name = f"closed-{uuid.uuid4().hex[:8]}"
        await client.client_setname(name)
        killed = 0
        for entry in await redis_client.client_list():
            if entry["name"] == name:
                killed += await redis_client.client_kill_filter(_id=entry["id"])
        assert killed == 1
        answers = await asyncio.gather(*(reader.counts(b) for b in batches))
        assert [_nlp_done(a) for a in answers] == [i % len(ESSAYS) for i in range(len(batches))]
    finally:
        await client.aclose()
