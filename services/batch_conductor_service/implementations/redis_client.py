"""The Redis client behind the batch state repository: one server, or a Redis Cluster.

The repository needs pipelines (transactional or not), PING and closing, which both redis-py
clients offer. Every key of a batch shares the hash tag `{<batch_id>}`, so each pipeline the
repository sends stays in one cluster slot, and a WATCH/MULTI/EXEC on a cluster pins one
connection to the master that owns it.
"""

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, SlotNotCoveredError

T = TypeVar("T")


class BatchStateRedis(Protocol):
    """`redis.asyncio.Redis` or `redis.asyncio.cluster.RedisCluster`."""

    # Pipelines stay untyped here: redis-py's two pipeline classes share the command methods
    # but not a type, and the commands queued on them do not depend on which one it is.
    def pipeline(self, transaction: bool = True) -> Any: ...

    def ping(self) -> Awaitable[Any]: ...

    async def aclose(self) -> None: ...


def is_cluster_outage(exc: RedisClusterException) -> bool:
    """RedisClusterException is not a RedisError and also reports mistakes (a command across
    slots). These are the cases that mean "the cluster cannot answer now": no node reachable,
    or a slot without a master."""
    if isinstance(exc, SlotNotCoveredError):
        return True
    if isinstance(exc.__cause__, (RedisConnectionError, OSError)):
        # "Redis Cluster cannot be connected": no startup node answered.
        return True
    # Raised when refreshing the topology finds slots that no master serves.
    return str(exc).startswith("All slots are not covered")


async def cluster_outage_as_connection_error(run: Callable[[], Awaitable[T]]) -> T:
    """Runs `run`, turning a cluster outage into the ConnectionError a single server gives, so
    both clients' outages look alike to the circuit breaker."""
    try:
        return await run()
    except RedisClusterException as exc:
        if not is_cluster_outage(exc):
            raise
        raise RedisConnectionError(f"{type(exc).__name__}: {exc}") from exc
