"""The Redis client behind the batch state repository: one server, or a Redis Cluster.

The repository needs pipelines (transactional or not), scripts, PING and closing, which both
redis-py clients offer. Every key of a batch shares the hash tag `{<batch_id>}`, so each pipeline
(or script) the repository sends stays in one cluster slot, and a WATCH/MULTI/EXEC on a cluster
pins one connection to the master that owns it.
"""

from collections.abc import Awaitable
from typing import Any, Protocol


class BatchStateRedis(Protocol):
    """`redis.asyncio.Redis` or `redis.asyncio.cluster.RedisCluster`."""

    # Pipelines stay untyped here: redis-py's two pipeline classes share the command methods
    # but not a type, and the commands queued on them do not depend on which one it is.
    def pipeline(self, transaction: bool = True) -> Any: ...

    def ping(self) -> Awaitable[Any]: ...

    def config_get(self, pattern: str) -> Awaitable[Any]: ...

    # Typed loosely as redis-py types them: a sync or an async reply.
    def evalsha(self, sha: str, numkeys: int, *keys_and_args: str) -> Any: ...

    def eval(self, script: str, numkeys: int, *keys_and_args: str) -> Any: ...

    async def aclose(self) -> None: ...
