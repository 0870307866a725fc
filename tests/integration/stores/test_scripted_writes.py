"""The atomic apply's writes sent as one script leave Redis exactly as the same commands sent one
by one would, and a write that fails part way records no event id."""

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from batch_conductor_service.domain.batch_facts import facts_added_by
from batch_conductor_service.domain.batch_state import BatchStateChange, EssayOutcome, RosterSource
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.redis.keys import BatchKeys
from batch_conductor_service.stores.redis.scripted_writes import ScriptedWrites
from batch_conductor_service.stores.redis.writes import (
    queue_event_ids,
    queue_facts,
    queue_present_marker,
    queue_ttl,
)
from tests.integration.stores.builders import change_builders, essays, roster
from tests.integration.stores.conftest import TTL_SECONDS, make_redis_repository

changes = change_builders([f"e{i}" for i in range(5)], ["spellcheck", "nlp"], max_essays=4)


def _queue_all(target: Any, keys: BatchKeys, built: list[BatchStateChange]) -> None:
    added = facts_added_by(keys.batch_id, built)
    queue_facts(target, keys, added)
    queue_event_ids(target, keys, added.event_ids)
    queue_present_marker(target, keys)
    queue_ttl(target, keys, TTL_SECONDS)


async def _contents(client: Redis, keys: BatchKeys) -> dict[str, Any]:
    """Every key of the batch by its name after the hash tag, with its members (and scores)."""
    found: dict[str, Any] = {}
    for key in (*keys.all, keys.counts):
        name = key.rsplit("}:", 1)[1]
        kind = await client.type(key)
        if kind == "set":
            found[name] = sorted(await client.smembers(key))
        elif kind == "zset":
            found[name] = await client.zrange(key, 0, -1, withscores=True)
        elif kind != "none":
            found[name] = kind
        if kind != "none":
            assert 0 < await client.ttl(key) <= TTL_SECONDS or key == keys.counts
    return found


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(writes=st.lists(st.lists(changes, min_size=1, max_size=4), min_size=1, max_size=3))
async def test_scripted_writes_leave_what_the_same_commands_sent_one_by_one_leave(
    redis_client: Redis, key_prefix: str, writes: list[list[Any]]
) -> None:
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    scripted, plain = BatchKeys(f"{key_prefix}-s", batch), BatchKeys(f"{key_prefix}-p", batch)
    # A counts hash there before, as a read would leave it, to see both writes drop it.
    for keys in (scripted, plain):
        await redis_client.hset(keys.counts, "roster", 0)
    for builders in writes:
        built = [build(batch) for build in builders]
        async with redis_client.pipeline(transaction=True) as pipe:
            one_script = ScriptedWrites()
            _queue_all(one_script, scripted, built)
            one_script.queue_on(pipe)
            await pipe.execute()
        async with redis_client.pipeline(transaction=True) as pipe:
            _queue_all(pipe, plain, built)
            await pipe.execute()
    try:
        assert await _contents(redis_client, scripted) == await _contents(redis_client, plain)
    finally:
        for keys in (scripted, plain):
            await redis_client.delete(*keys.all, keys.counts)


async def test_a_roster_larger_than_a_script_can_unpack_at_once_is_written_whole(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    # Lua's unpack() takes about 8,000 values: more members than that must go in chunks.
    count = 10_000
    ids = [f"essay-{i}" for i in range(count)]
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply(roster(batch, RosterSource.REGISTERED, *ids))
    counts = await repository.get_counts(batch)
    assert counts.roster_size == count


async def test_a_write_that_fails_part_way_records_no_event_id(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    keys = repository.keys(batch)
    await redis_client.set(keys.succeeded, "not a set")
    change = essays(batch, "spellcheck", EssayOutcome.SUCCEEDED, "e1")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await repository.apply(change)
    # The event is not taken for done: its redelivery will be written, not counted a duplicate.
    assert not await redis_client.sismember(keys.events, change.event_id)
