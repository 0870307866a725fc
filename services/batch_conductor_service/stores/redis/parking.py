"""Essay placement in Redis (one server or a Redis Cluster), for the Redis store.

Each essay has keys of its own under the hash tag `{<essay_id>}`: the batches whose rosters name
it (a set, kept as long as batch state) and the results parked for it (a hash by event id, kept
BCS_PARKED_RESULT_TTL_SECONDS). The lot, a sorted set of every parked result scored by when it
expires, counts them against the cap. Nothing here is a transaction across keys: the consumer's
order of calls is what makes a racing roster and result meet (protocols.py).
"""

import asyncio
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster

from batch_conductor_service.domain.batch_state import ParkedResult
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.health import ComponentHealth
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.guard import StoreGuard
from batch_conductor_service.stores.parking import (
    decode_parked,
    encode_parked,
    parking_health,
    parking_unknown,
)
from batch_conductor_service.stores.redis.connection import (
    RedisClient,
    SharedScriptCalls,
    size_bounded,
)
from batch_conductor_service.stores.redis.layout import SEPARATOR, hash_tag

# KEYS: essays' batch sets, grouped by the batches they get. ARGV: the TTL, then per group the
# number of its keys, the number of its batch ids and the ids. Per essay, two commands' replies
# (or three arguments' packing) cost redis-py more than Redis takes to run them.
_INDEX_SCRIPT = """
local at, key = 2, 0
while at <= #ARGV do
  local keys, batches = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
  for i = key + 1, key + keys do
    redis.call('SADD', KEYS[i], unpack(ARGV, at + 2, at + 1 + batches))
    redis.call('EXPIRE', KEYS[i], ARGV[1])
  end
  key = key + keys
  at = at + 2 + batches
end
return key
"""
_ESSAYS_PER_CALL = 500
_ESSAYS_PER_ROUND = 2_000


class RedisEssayPlacement:
    health_name = "parking"

    def __init__(
        self,
        client: RedisClient,
        guard: StoreGuard,
        metrics: BcsMetrics,
        *,
        ttl_seconds: int,
        parked_ttl_seconds: int,
        max_parked: int,
        key_prefix: str = "bcs",
        clock: Any = time.time,
    ) -> None:
        self._client = client
        self._guard = guard
        self._metrics = metrics
        self._ttl = ttl_seconds
        self._parked_ttl = parked_ttl_seconds
        self._max_parked = max_parked
        self._prefix = key_prefix
        self._clock = clock
        self.lot = f"{key_prefix}:parked"
        self._index = SharedScriptCalls(client, _INDEX_SCRIPT)
        self._cluster = client if isinstance(client, RedisCluster) else None

    def batches_key(self, essay_id: str) -> str:
        return f"{self._prefix}:essay:{{{hash_tag(essay_id)}}}:batches"

    def parked_key(self, essay_id: str) -> str:
        return f"{self._prefix}:essay:{{{hash_tag(essay_id)}}}:parked"

    async def index_rosters(self, rosters: Mapping[str, Collection[str]]) -> None:
        # In rounds of about _ESSAYS_PER_ROUND essays, each built and sent before the next: a
        # fetch's rosters can name 20,000 essays, and building and packing their calls in one
        # piece held the event loop (every /define waiting behind it) for about 100 ms. An
        # essay in rosters of two rounds is added to in both: SADD only adds.
        sizes = {batch_id: len(essay_ids) for batch_id, essay_ids in rosters.items()}
        for part in size_bounded(sizes, _ESSAYS_PER_ROUND):
            await self._index_round({batch_id: rosters[batch_id] for batch_id in part})

    async def _index_round(self, rosters: Mapping[str, Collection[str]]) -> None:
        by_essay: dict[str, set[str]] = {}
        for batch_id, essay_ids in rosters.items():
            for essay_id in essay_ids:
                by_essay.setdefault(essay_id, set()).add(batch_id)

        # Per script call (per chunk, or per cluster slot), the essays by the batches they get.
        groups: dict[int, dict[tuple[str, ...], list[str]]] = {}
        for number, (essay_id, batch_ids) in enumerate(by_essay.items()):
            key = self.batches_key(essay_id)
            call = groups.setdefault(self._call_of(number, key), {})
            call.setdefault(tuple(sorted(batch_ids)), []).append(key)
        calls: list[tuple[list[str], list[str | int]]] = []
        for call in groups.values():
            keys: list[str] = []
            args: list[str | int] = [self._ttl]
            for batches, batch_keys in call.items():
                keys += batch_keys
                args += [len(batch_keys), len(batches), *batches]
            calls.append((keys, args))

        async def index() -> None:
            # One round trip: calls asked together share a pipeline.
            await asyncio.gather(*(self._index(keys, args) for keys, args in calls))

        if calls:
            await self._guard.run("placement_index", index)

    def _call_of(self, number: int, key: str) -> int:
        """The script call a key joins: one per cluster slot (a script may not span slots),
        and on one server one per chunk of essays, bounding how long a call holds it."""
        if self._cluster is not None:
            return int(self._cluster.keyslot(key))
        return number // _ESSAYS_PER_CALL

    async def batches_of(self, essay_ids: Collection[str]) -> dict[str, frozenset[str]]:
        essays = sorted(set(essay_ids))
        replies = await self._each(essays, "SMEMBERS", self.batches_key, "placement_lookup")
        return {essay: frozenset(ids) for essay, ids in zip(essays, replies, strict=True) if ids}

    async def park(self, results: Sequence[ParkedResult]) -> list[ParkedResult]:
        if not results:
            return []

        async def park() -> list[ParkedResult]:
            now_ms = await self._expire()
            room = max(0, self._max_parked - int(await self._client.zcard(self.lot)))
            taken, refused = results[:room], list(results[room:])
            expires_ms = now_ms + self._parked_ttl * 1000
            async with self._client.pipeline(transaction=False) as pipe:
                for result in taken:
                    key = self.parked_key(result.essay_id)
                    pipe.hset(key, result.event_id, encode_parked(result))
                    pipe.expire(key, self._parked_ttl)
                if taken:
                    pipe.zadd(self.lot, {_member(r): expires_ms for r in taken})
                    pipe.expire(self.lot, self._parked_ttl)
                await pipe.execute()
            return refused

        return await self._guard.run("placement_park", park)

    async def parked_for(self, essay_ids: Collection[str]) -> dict[str, list[ParkedResult]]:
        async def any_parked() -> int:
            await self._expire()
            return int(await self._client.zcard(self.lot))

        # The lot is empty nearly always (results come after their rosters): one call then.
        if not essay_ids or not await self._guard.run("placement_parked", any_parked):
            return {}
        essays = sorted(set(essay_ids))
        replies = await self._each(essays, "HVALS", self.parked_key, "placement_parked")
        found: dict[str, list[ParkedResult]] = {}
        for essay_id, values in zip(essays, replies, strict=True):
            decoded = [r for r in map(decode_parked, values) if r is not None]
            if decoded:
                found[essay_id] = decoded
        return found

    async def unpark(self, results: Sequence[ParkedResult]) -> None:
        async def unpark() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                for result in results:
                    pipe.hdel(self.parked_key(result.essay_id), result.event_id)
                pipe.zrem(self.lot, *(_member(r) for r in results))
                await pipe.execute()

        if results:
            await self._guard.run("placement_unpark", unpark)

    async def health(self) -> dict[str, ComponentHealth]:
        async def parked() -> int:
            now_ms = int(self._clock() * 1000)
            return int(await self._client.zcount(self.lot, f"({now_ms}", "+inf"))

        try:
            count = await self._guard.run("health", parked)
        except StateStoreUnavailableError as exc:
            return {self.health_name: parking_unknown(exc)}
        return {self.health_name: parking_health(count, self._max_parked)}

    async def _expire(self) -> int:
        """Drops the results parked longer than their time, and counts them; returns now, in
        the lot's milliseconds."""
        now_ms = int(self._clock() * 1000)
        # Members come back as text: the client decodes replies.
        expired = [str(m) for m in await self._client.zrangebyscore(self.lot, "-inf", now_ms)]
        if expired:
            async with self._client.pipeline(transaction=False) as pipe:
                for member in expired:
                    essay_id, _, event_id = member.rpartition(SEPARATOR)
                    pipe.hdel(self.parked_key(essay_id), event_id)
                pipe.zrem(self.lot, *expired)
                await pipe.execute()
            self._metrics.unplaced_results.labels("expired").inc(len(expired))
        return now_ms

    async def _each(
        self, essays: list[str], command: str, key_of: Any, operation: str
    ) -> list[Any]:
        """One reply per essay, in order, in one round trip."""
        if not essays:
            return []

        async def read() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                for essay_id in essays:
                    # execute_command: redis-py 8.1's cluster pipeline passes SMEMBERS's `keys`
                    # option on to the reply parser, which rejects it.
                    pipe.execute_command(command, key_of(essay_id))
                replies: list[Any] = await pipe.execute()
            return replies

        return await self._guard.run(operation, read)


def _member(result: ParkedResult) -> str:
    return f"{result.essay_id}{SEPARATOR}{result.event_id}"
