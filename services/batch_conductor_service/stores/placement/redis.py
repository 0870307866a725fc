"""Essay placement in Redis (one server or a Redis Cluster).

Each essay has its own keys under the hash tag `{<essay_id>}` (braces encoded, as for batches):
the batches whose rosters name it (a set) and the results kept for it (a hash by event id).
They live in other slots than the batch keys, so nothing here is a transaction across them;
the placement step's write-then-read order is what makes a racing roster and result meet.
Every key lives as long as batch state (BCS_REDIS_TTL_SECONDS), refreshed on each write.
"""

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster

from batch_conductor_service.domain.placement import UnplacedResult
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.circuit_breaker import CircuitBreaker
from batch_conductor_service.stores.placement.codec import decode_result, encode_result
from batch_conductor_service.stores.placement.redis_scripts import index_essays, read_keys
from batch_conductor_service.stores.redis.client import BatchStateRedis
from batch_conductor_service.stores.redis.cluster import WaitingRedisCluster
from batch_conductor_service.stores.redis.errors import guarded_redis_call
from batch_conductor_service.stores.redis.keys import hash_tag


class RedisEssayPlacement:
    def __init__(
        self,
        client: BatchStateRedis,
        *,
        ttl_seconds: int,
        metrics: BcsMetrics,
        breaker: CircuitBreaker,
        key_prefix: str = "bcs",
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._metrics = metrics
        self._breaker = breaker
        self._prefix = key_prefix
        # One script per chunk of essays on one server; per-key commands across a cluster's
        # slots (redis_scripts.py).
        self._scripts = not isinstance(client, RedisCluster | WaitingRedisCluster)

    def batches_key(self, essay_id: str) -> str:
        return f"{self._prefix}:essay:{{{hash_tag(essay_id)}}}:batches"

    def results_key(self, essay_id: str) -> str:
        return f"{self._prefix}:essay:{{{hash_tag(essay_id)}}}:results"

    async def index_rosters(self, rosters: Mapping[str, Collection[str]]) -> None:
        by_essay: dict[str, set[str]] = {}
        for batch_id, essay_ids in rosters.items():
            for essay_id in essay_ids:
                by_essay.setdefault(essay_id, set()).add(batch_id)

        async def run() -> None:
            if self._scripts:
                keys_by_batch = {
                    batch_id: [self.batches_key(essay_id) for essay_id in sorted(essay_ids)]
                    for batch_id, essay_ids in rosters.items()
                }
                await index_essays(self._client, keys_by_batch, self._ttl)
                return
            async with self._client.pipeline(transaction=False) as pipe:
                for essay_id, batch_ids in by_essay.items():
                    key = self.batches_key(essay_id)
                    pipe.sadd(key, *sorted(batch_ids))
                    pipe.expire(key, self._ttl)
                await pipe.execute()

        if by_essay:
            await guarded_redis_call(self._breaker, self._metrics, "placement_index", run)

    async def batches_of(self, essay_ids: Collection[str]) -> dict[str, frozenset[str]]:
        essays = sorted(set(essay_ids))
        replies = await self._read_each(essays, "SMEMBERS", self.batches_key, "placement_lookup")
        return {essay: frozenset(ids) for essay, ids in replies.items()}

    async def keep(self, results: Sequence[UnplacedResult]) -> None:
        async def run() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                for result in results:
                    key = self.results_key(result.essay_id)
                    pipe.hset(key, result.event_id, encode_result(result))
                    pipe.expire(key, self._ttl)
                await pipe.execute()

        if results:
            await guarded_redis_call(self._breaker, self._metrics, "placement_keep", run)

    async def kept_for(self, essay_ids: Collection[str]) -> dict[str, list[UnplacedResult]]:
        essays = sorted(set(essay_ids))
        replies = await self._read_each(essays, "HVALS", self.results_key, "placement_kept")
        found: dict[str, list[UnplacedResult]] = {}
        for essay_id, values in replies.items():
            decoded = [r for r in map(decode_result, values) if r is not None]
            if decoded:
                found[essay_id] = decoded
        return found

    async def _read_each(
        self, essays: list[str], command: str, key_of: Any, operation: str
    ) -> dict[str, Any]:
        """The replies of the essays whose key holds something, by essay."""
        if not essays:
            return {}

        async def run() -> dict[str, Any]:
            if self._scripts:
                found = await read_keys(self._client, command, [key_of(e) for e in essays])
                return {essays[position]: reply for position, reply in found.items()}
            async with self._client.pipeline(transaction=False) as pipe:
                for essay_id in essays:
                    # execute_command, as stores/redis/reads.py explains for SMEMBERS.
                    pipe.execute_command(command, key_of(essay_id))
                replies: list[Any] = await pipe.execute()
            return {essay: reply for essay, reply in zip(essays, replies, strict=True) if reply}

        return await guarded_redis_call(self._breaker, self._metrics, operation, run)
