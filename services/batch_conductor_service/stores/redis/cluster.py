"""A Redis Cluster client whose callers wait for a connection instead of failing at once.

redis-py's cluster client keeps a pool per node that raises MaxConnectionsError as soon as all
its connections are in use; it has no blocking pool. The single-server client waits for one
(BlockingConnectionPool, up to the timeout), and a burst of concurrent writers on one batch,
all of whose transactions go to the same master, relies on that. Here each operation first takes
one of `max_connections` places: an operation uses at most one connection per node, so no node's
pool can run out.
"""

import asyncio
from types import TracebackType
from typing import Any

from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError


class WaitingRedisCluster:
    def __init__(self, cluster: RedisCluster, max_connections: int, wait_seconds: float) -> None:
        self.cluster = cluster
        self._places = asyncio.Semaphore(max_connections)
        self._wait = wait_seconds

    def pipeline(self, transaction: bool = True) -> "_PipelineInPlace":
        return _PipelineInPlace(self, self.cluster.pipeline(transaction=transaction))

    async def ping(self) -> Any:
        await self.take_place()
        try:
            return await self.cluster.ping()
        finally:
            self.leave_place()

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: str) -> Any:
        await self.take_place()
        try:
            return await self.cluster.evalsha(sha, numkeys, *keys_and_args)
        finally:
            self.leave_place()

    async def eval(self, script: str, numkeys: int, *keys_and_args: str) -> Any:
        await self.take_place()
        try:
            return await self.cluster.eval(script, numkeys, *keys_and_args)
        finally:
            self.leave_place()

    async def config_get(self, pattern: str) -> Any:
        await self.take_place()
        try:
            return await self.cluster.config_get(pattern, target_nodes=RedisCluster.PRIMARIES)
        finally:
            self.leave_place()

    async def aclose(self) -> None:
        await self.cluster.aclose()

    async def take_place(self) -> None:
        try:
            await asyncio.wait_for(self._places.acquire(), self._wait)
        except TimeoutError:
            # What BlockingConnectionPool raises when its wait runs out: an outage to callers.
            raise RedisConnectionError(
                f"no Redis Cluster connection free within {self._wait}s"
            ) from None

    def leave_place(self) -> None:
        self._places.release()


class _PipelineInPlace:
    """`async with` gives the cluster pipeline, holding a place while it is in use."""

    def __init__(self, owner: WaitingRedisCluster, pipe: ClusterPipeline) -> None:
        self._owner = owner
        self._pipe = pipe

    async def __aenter__(self) -> ClusterPipeline:
        await self._owner.take_place()
        try:
            return await self._pipe.__aenter__()
        except BaseException:
            self._owner.leave_place()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._pipe.__aexit__(exc_type, exc, traceback)  # type: ignore[arg-type]
        finally:
            self._owner.leave_place()
