"""Start-up reads Redis's maxmemory-policy; /healthz shows it unless it is noeviction."""

from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from batch_conductor_service.stores.redis.eviction import (
    REFUSED,
    eviction_detail,
    read_eviction_policy,
)


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


async def test_a_server_that_refuses_config_is_shown_as_refused_not_an_error() -> None:
    error = ResponseError("unknown command 'CONFIG'")
    assert await read(Answering(error=error)) == REFUSED
    assert await read(Answering({})) == REFUSED


async def test_a_server_that_is_down_is_asked_again_later() -> None:
    assert await read(Answering(error=RedisConnectionError("refused"))) is None


def test_health_shows_the_policy_unless_it_is_noeviction() -> None:
    assert eviction_detail("noeviction") == {}
    detail = eviction_detail("volatile-lru")
    assert detail["maxmemory_policy"] == "volatile-lru"
    assert "evict" in detail["maxmemory_policy_warning"]
    assert eviction_detail(None)["maxmemory_policy"] == "not read yet"
