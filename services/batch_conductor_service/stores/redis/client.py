"""The Redis client behind the batch state repository: one server, or a Redis Cluster.

The repository needs pipelines (transactional or not), PING and closing, which both redis-py
clients offer. Every key of a batch shares the hash tag `{<batch_id>}`, so each pipeline the
repository sends stays in one cluster slot, and a WATCH/MULTI/EXEC on a cluster pins one
connection to the master that owns it.
"""

from collections.abc import Awaitable
from typing import Any, Protocol


class BatchStateRedis(Protocol):
    """`redis.asyncio.Redis` or `redis.asyncio.cluster.RedisCluster`."""

    # Pipelines stay untyped here: redis-py's two pipeline classes share the command methods
    # but not a type, and the commands queued on them do not depend on which one it is.
    def pipeline(self, transaction: bool = True) -> Any: ...

    def ping(self) -> Awaitable[Any]: ...

    async def aclose(self) -> None: ...
