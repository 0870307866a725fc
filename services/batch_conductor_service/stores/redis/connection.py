"""The Redis client (one server, or a Redis Cluster) and what its failures mean.

Both redis-py clients are used as shipped: their connection pools, pipelines and scripts. Every
key of a batch shares one hash tag, so each transaction or script stays in one cluster slot.
"""

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AskError,
    ClusterError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from batch_conductor_service.errors import StartupError
from batch_conductor_service.stores.guard import Failure
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)

RedisClient: TypeAlias = Redis | RedisCluster

# Besides the connection failing (a server still loading its data, or a pool out of
# connections, are ConnectionErrors too): a replica during failover (READONLY), a server out of
# memory under `noeviction` (OOM), a cluster without a master for a slot or out of redirections
# while slots move (ClusterError), a slot being migrated (TRYAGAIN), a MOVED/ASK a transaction
# could not follow (AskError).
_OUTAGES = (
    RedisConnectionError,
    ReadOnlyError,
    OutOfMemoryError,
    ClusterError,
    TryAgainError,
    AskError,
    OSError,
)


def classify(exc: BaseException) -> Failure | None:
    """Whether a Redis failure is an outage; anything else is a bug or a bad message."""
    if isinstance(exc, RedisTimeoutError | TimeoutError):
        return Failure.TIMEOUT
    if isinstance(exc, _OUTAGES):
        return Failure.OUTAGE
    if isinstance(exc, RedisClusterException) and _is_cluster_outage(exc):
        return Failure.OUTAGE
    return None


def _is_cluster_outage(exc: RedisClusterException) -> bool:
    # RedisClusterException is not a RedisError and also reports mistakes (a command across
    # slots); these are the cases that mean "the cluster cannot answer now".
    if isinstance(exc, SlotNotCoveredError):
        return True
    if isinstance(exc.__cause__, RedisConnectionError | OSError):
        return True  # "Redis Cluster cannot be connected": no startup node answered.
    return str(exc).startswith("All slots are not covered")


def make_redis_client(
    url: str, *, cluster: bool, max_connections: int, timeout_seconds: float
) -> RedisClient:
    """Connects on first use, so the service starts while Redis is down (and says so)."""
    if cluster:
        try:
            return RedisCluster.from_url(
                url,
                max_connections=max_connections,
                socket_timeout=timeout_seconds,
                socket_connect_timeout=timeout_seconds,
                decode_responses=True,
                # No retries by the client: retrying a transaction on a new connection would
                # send MULTI/EXEC without its WATCH. The caller retries.
                retry=Retry(NoBackoff(), 0),
            )
        except RedisClusterException as exc:
            # e.g. a unix:// URL or a database other than 0; the message holds no credentials.
            raise StartupError(f"BCS_REDIS_URL cannot name a Redis Cluster node: {exc}") from exc
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_seconds,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        decode_responses=True,
        # One immediate retry replaces a pooled connection that a Redis restart closed; more,
        # with redis-py's default backoff, would make every call wait seconds while it is down.
        retry=Retry(NoBackoff(), 1),
    )
    return Redis.from_pool(pool)


def size_bounded(sizes: Mapping[str, int], cap: int, *, one_each: bool = False) -> list[list[str]]:
    """The ids in order, in groups whose sizes add up to at most `cap` (an id larger than that
    alone); with `one_each`, one id a group. redis-py's asyncio connections pack commands in
    Python, so what one group's call packs is one piece of the event loop, which /define shares."""
    groups: list[list[str]] = [[]]
    size = 0
    for key, key_size in sizes.items():
        if groups[-1] and (one_each or size + key_size > cap):
            groups.append([])
            size = 0
        groups[-1].append(key)
        size += key_size
    return [group for group in groups if group]


_Call: TypeAlias = tuple[Sequence[str], Sequence[str | int]]  # a script call's keys and args

# How many more turns of the event loop a round trip waits for readers to join it. A request's
# way from its socket to its read spans several turns (Hypercorn reads it, Quart builds it, the
# hooks run, the route reads the body), so requests that arrived together reach their reads over
# several turns. Waiting for them lets one round trip serve them all: under wrk -c32, /define
# went from about 0.54x of the floor app to 0.72x-0.77x (docs/performance.md). A read alone
# waits through as many idle turns: about 60 us of a 0.9 ms /define with one request in flight.
JOIN_TURNS = 6


class SharedScriptCalls:
    """One Lua script, called by many readers at once: the calls asked within a few turns of the
    event loop (JOIN_TURNS) go to Redis as one non-transactional redis-py pipeline of EVALSHAs,
    so redis-py's cost per call (taking a pooled connection, its retry wrapper, its argument
    checks) and a round trip are paid once per such round, not once per request. Where system
    calls are dear, a round trip costs more than the Python around it (on the machines measured
    in docs/performance.md a bare redis-py GET takes about 80 us of CPU). Each caller gets its
    own reply or its own command's error; a pipeline that fails as a whole fails every call in
    it, as separate calls on a failing connection would. A caller that gives up (a cancelled
    request) leaves the others' calls unharmed."""

    def __init__(self, client: RedisClient, script: str) -> None:
        self._client = client
        self._script = client.register_script(script)
        self._waiting: list[tuple[_Call, asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak refs

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int] = ()) -> Any:
        loop = asyncio.get_running_loop()
        if not self._waiting:
            # Starts on the loop's next turn, then lets JOIN_TURNS more turns' callers join.
            task = loop.create_task(self._send())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        reply: asyncio.Future[Any] = loop.create_future()
        self._waiting.append(((keys, args), reply))
        return await reply

    async def _send(self) -> None:
        for _ in range(JOIN_TURNS):
            await asyncio.sleep(0)
        calls, self._waiting = self._waiting, []
        try:
            if len(calls) == 1:
                replies: list[Any] = [await self._call_one(calls[0][0])]
            else:
                replies = await self._call_many([call for call, _ in calls])
        except asyncio.CancelledError:
            for _, reply in calls:
                reply.cancel()
            raise
        except Exception as exc:
            for _, reply in calls:
                if not reply.done():
                    reply.set_exception(exc)
            return
        for (_, reply), value in zip(calls, replies, strict=True):
            if reply.done():
                continue
            if isinstance(value, Exception):
                reply.set_exception(value)
            else:
                reply.set_result(value)

    async def _call_one(self, call: _Call) -> Any:
        keys, args = call
        try:
            return await self._script(keys=keys, args=args)
        except Exception as exc:
            return exc

    async def _call_many(self, calls: list[_Call]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for keys, args in calls:
            # Not pipe.evalsha: the cluster's pipeline refuses that method (not the command).
            pipe.execute_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        # A server that lost its scripts (a restart, a failover, SCRIPT FLUSH): the script
        # object loads it again on its own call.
        for index, value in enumerate(replies):
            if isinstance(value, NoScriptError):
                replies[index] = await self._call_one(calls[index])
        return replies


SAFE_EVICTION_POLICY = "noeviction"


async def read_eviction_policy(client: RedisClient, timeout_seconds: float) -> str | None:
    """`maxmemory-policy` (on a cluster, its masters' joined by commas); "unknown" when the
    server refuses CONFIG (managed Redis often does); None when it cannot be asked now."""
    try:
        if isinstance(client, RedisCluster):
            call = client.config_get("maxmemory-policy", target_nodes=RedisCluster.PRIMARIES)
        else:
            call = client.config_get("maxmemory-policy")
        reply = await asyncio.wait_for(call, timeout_seconds)
    except ResponseError:
        return "unknown (CONFIG GET refused)"
    except Exception as exc:
        if classify(exc) is None:
            raise
        return None
    policy = ",".join(sorted(_policies(reply))) or "unknown"
    if policy != SAFE_EVICTION_POLICY:
        logger.warning("redis_may_evict_batch_keys", maxmemory_policy=policy)
    return policy


def _policies(reply: Any) -> set[str]:
    # One server: {"maxmemory-policy": "noeviction"}; a cluster may answer per node.
    if not isinstance(reply, dict):
        return set()
    found: set[str] = set()
    for name, value in reply.items():
        if isinstance(value, dict):
            found |= _policies(value)
        elif name == "maxmemory-policy" and isinstance(value, str):
            found.add(value)
    return found
