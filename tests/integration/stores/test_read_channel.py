"""The read channel against the real Redis: every caller gets its own reply, whatever arrives
while an exchange is on the wire goes in the next one, and an error, a timeout or a caller that
goes away leaves the connection in step for the callers after it."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, ConnectionPool
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from batch_conductor_service.domain.batch_state import EssayOutcome, RosterSource
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.factory import make_redis_client
from batch_conductor_service.stores.redis.read_channel import ReadChannel
from batch_conductor_service.wiring.settings import load_settings
from tests.integration.stores.builders import essays, roster
from tests.integration.stores.conftest import REDIS_URL, make_redis_repository


class SizedSends(Connection):
    """Records how many commands each send carried."""

    sizes: list[int] = []  # noqa: RUF012 - reset by each test

    def pack_commands(self, commands: Any) -> list[bytes]:
        commands = list(commands)
        type(self).sizes.append(len(commands))
        return super().pack_commands(commands)


@pytest.fixture
async def client() -> AsyncIterator[Redis]:
    pool = ConnectionPool.from_url(
        REDIS_URL, connection_class=SizedSends, decode_responses=True, socket_timeout=5
    )
    client = Redis.from_pool(pool)
    SizedSends.sizes = []
    try:
        yield client
    finally:
        await client.aclose()


async def _seeded(redis_client: Redis, key_prefix: str, count: int) -> list[str]:
    keys = [f"{key_prefix}:k{i}" for i in range(count)]
    await redis_client.mset({key: f"value-{i}" for i, key in enumerate(keys)})
    return keys


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    waves=st.lists(
        st.lists(st.integers(min_value=0, max_value=15), min_size=1, max_size=12),
        min_size=1,
        max_size=5,
    )
)
async def test_every_caller_gets_its_own_reply_whenever_it_asks(
    redis_client: Redis, key_prefix: str, waves: list[list[int]]
) -> None:
    keys = await _seeded(redis_client, key_prefix, 16)
    channel = ReadChannel.of(redis_client)
    asked: list[tuple[int, asyncio.Task[Any]]] = []
    for wave in waves:
        # Each wave is asked in a turn of its own, some while an earlier one is on the wire.
        asked += [(i, asyncio.ensure_future(channel.call("GET", keys[i]))) for i in wave]
        await asyncio.sleep(0)
    for index, task in asked:
        assert await task == f"value-{index}"


async def test_callers_of_one_turn_share_a_send_and_later_ones_share_the_next(
    client: Redis, redis_client: Redis, key_prefix: str
) -> None:
    keys = await _seeded(redis_client, key_prefix, 11)
    channel = ReadChannel.of(client)
    await channel.call("PING")  # connected and greeted before anything is counted
    SizedSends.sizes = []
    first = [asyncio.ensure_future(channel.call("GET", key)) for key in keys[:3]]
    await asyncio.sleep(0)  # the exchange of the first three is on the wire now
    later = [asyncio.ensure_future(channel.call("GET", key)) for key in keys[3:]]
    answers = await asyncio.gather(*first, *later)
    assert answers == [f"value-{i}" for i in range(11)]
    assert SizedSends.sizes == [3, 8]


async def test_an_error_reply_answers_only_its_own_caller(
    redis_client: Redis, key_prefix: str
) -> None:
    keys = await _seeded(redis_client, key_prefix, 4)
    wrong_type = f"{key_prefix}:a-set"
    await redis_client.sadd(wrong_type, "member")
    channel = ReadChannel.of(redis_client)
    calls = [channel.call("GET", keys[0]), channel.call("GET", wrong_type)]
    calls += [channel.call("GET", key) for key in keys[1:]]
    answers = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(answers[1], ResponseError)
    assert "WRONGTYPE" in str(answers[1])
    assert [answers[0], *answers[2:]] == [f"value-{i}" for i in range(4)]


async def test_a_caller_that_goes_away_leaves_the_others_their_replies(
    redis_client: Redis, key_prefix: str
) -> None:
    keys = await _seeded(redis_client, key_prefix, 6)
    channel = ReadChannel.of(redis_client)
    asked = [asyncio.ensure_future(channel.call("GET", key)) for key in keys]
    await asyncio.sleep(0)
    asked[2].cancel()
    answers = await asyncio.gather(*asked, return_exceptions=True)
    assert isinstance(answers[2], asyncio.CancelledError)
    assert [a for i, a in enumerate(answers) if i != 2] == [
        f"value-{i}" for i in range(6) if i != 2
    ]
    assert await channel.call("GET", keys[3]) == "value-3"


async def test_a_reply_late_past_the_timeout_fails_its_callers_and_answers_no_later_one(
    redis_client: Redis, key_prefix: str
) -> None:
    keys = await _seeded(redis_client, key_prefix, 2)
    channel = ReadChannel(redis_client.connection_pool, timeout_seconds=0.2)
    assert await channel.call("GET", keys[0]) == "value-0"
    pauser = Redis.from_url(REDIS_URL)
    try:
        await pauser.execute_command("CLIENT", "PAUSE", "5000", "ALL")
        try:
            with pytest.raises(RedisTimeoutError):
                await channel.call("GET", keys[0])
        finally:
            await pauser.execute_command("CLIENT", "UNPAUSE")
        # The timed-out GET is answered once the pause ends; that reply must not answer this.
        assert await channel.call("GET", keys[1]) == "value-1"
    finally:
        await pauser.aclose()


async def test_the_held_connection_closes_with_the_client(key_prefix: str) -> None:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    name = f"{key_prefix}-channel"
    channel = ReadChannel.of(client)
    await channel.call("CLIENT", "SETNAME", name)
    observer = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        assert [c["name"] for c in await observer.client_list()].count(name) == 1
        await client.aclose()
        await asyncio.sleep(0.05)
        assert name not in [c["name"] for c in await observer.client_list()]
    finally:
        await observer.aclose()


async def test_with_a_pool_of_one_connection_reads_and_writes_both_go_through(
    metrics: BcsMetrics, key_prefix: str, redis_client: Redis
) -> None:
    # BCS_REDIS_MAX_CONNECTIONS=1 is a valid setting: the channel must not take the only one.
    client = make_redis_client(
        load_settings(REDIS_URL=REDIS_URL, REDIS_MAX_CONNECTIONS=1, REDIS_TIMEOUT_SECONDS=1)
    )
    try:
        repository = make_redis_repository(client, metrics, key_prefix)
        batch = f"batch-{uuid.uuid4().hex[:8]}"
        await repository.apply(roster(batch, RosterSource.READY, "e1", "e2"))
        first = await repository.get_counts(batch)
        await repository.apply(essays(batch, "nlp", EssayOutcome.SUCCEEDED, "e1", "e2"))
        second = await repository.get_counts(batch)
    finally:
        await client.aclose()
    assert first.roster_size == 2
    assert second.counts_for("nlp").roster_succeeded == 2
