"""What Redis's failures mean, and the eviction policy start-up reads and /healthz shows."""

from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from batch_conductor_service.stores.guard import Failure
from batch_conductor_service.stores.redis.connection import classify, read_eviction_policy


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (RedisConnectionError("refused"), Failure.OUTAGE),
        (ReadOnlyError("replica"), Failure.OUTAGE),
        (OutOfMemoryError("OOM"), Failure.OUTAGE),
        (SlotNotCoveredError("no master"), Failure.OUTAGE),
        (RedisTimeoutError("slow"), Failure.TIMEOUT),
        (TimeoutError(), Failure.TIMEOUT),
        (ResponseError("WRONGTYPE"), None),
        (RedisClusterException("keys in request don't hash to the same slot"), None),
        (KeyError("a bug"), None),
    ],
)
def test_outages_are_told_from_mistakes(error: BaseException, failure: Failure | None) -> None:
    assert classify(error) is failure


class Answering:
    def __init__(self, reply: Any = None, error: BaseException | None = None) -> None:
        self.reply = reply
        self.error = error

    async def config_get(self, pattern: str) -> Any:
        assert pattern == "maxmemory-policy"
        if self.error is not None:
            raise self.error
        return self.reply


async def read(client: Answering) -> str | None:
    return await read_eviction_policy(client, 1.0)  # type: ignore[arg-type]


async def test_the_policy_of_one_server_is_read() -> None:
    assert await read(Answering({"maxmemory-policy": "volatile-lru"})) == "volatile-lru"


async def test_a_cluster_answering_per_node_shows_each_policy_once() -> None:
    reply = {
        "n1": {"maxmemory-policy": "noeviction"},
        "n2": {"maxmemory-policy": "allkeys-lru"},
        "n3": {"maxmemory-policy": "noeviction"},
    }
    assert await read(Answering(reply)) == "allkeys-lru,noeviction"


async def test_a_server_that_refuses_config_is_shown_as_unknown_not_an_error() -> None:
    assert (await read(Answering(error=ResponseError("unknown command 'CONFIG'")))).startswith(
        "unknown"
    )
    assert await read(Answering({})) == "unknown"


async def test_a_server_that_is_down_is_asked_again_later() -> None:
    assert await read(Answering(error=RedisConnectionError("refused"))) is None
