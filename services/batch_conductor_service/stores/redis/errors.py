"""What "Redis cannot answer now" looks like, on one server and on a Redis Cluster, and the
guarded call that turns it into StateStoreUnavailableError."""

from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import (
    AskError,
    ClusterError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.circuit_breaker import CircuitBreaker
from batch_conductor_service.stores.guarded_call import guarded_store_call

T = TypeVar("T")

STORE = "redis"
# Besides the connection failing: a replica during failover (READONLY), a server out of memory
# under `noeviction` (OOM), a cluster without a master for the slot (CLUSTERDOWN, MASTERDOWN:
# ClusterErrors), a cluster client that ran out of redirections while slots move (ClusterError
# "TTL exhausted"), a slot being migrated (TRYAGAIN), or a MOVED/ASK a transaction could not
# follow (AskError; MovedError is one). A server still loading its data (LOADING,
# BusyLoadingError) and a cluster client out of connections (MaxConnectionsError) are
# ConnectionErrors already; a cluster with no reachable node or an unserved slot is turned into
# one by cluster_outage_as_connection_error.
STORE_ERRORS = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
    OutOfMemoryError,
    ClusterError,
    TryAgainError,
    AskError,
    OSError,
)


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


async def guarded_redis_call(
    breaker: CircuitBreaker,
    metrics: BcsMetrics,
    operation: str,
    run: Callable[[], Awaitable[T]],
) -> T:
    return await guarded_store_call(
        breaker, STORE_ERRORS, metrics, operation, lambda: cluster_outage_as_connection_error(run)
    )
