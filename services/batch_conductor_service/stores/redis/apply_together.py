"""A fetch's writes to many batches in one WATCH/MULTI/EXEC, on one Redis server.

Batch by batch (apply.py), a fetch of 2,000 events over forty batches is forty transactions,
each paying redis-py's cost of a pipeline, a pinned connection, a WATCH, a read and an EXEC. On
one server they fit one: WATCH every batch's events set, read which of the event ids each
already holds (one script), then MULTI, one script with every batch's writes (the same commands
writes.py queues, batch after batch), EXEC. A rival write to any of the batches aborts it all
and nothing is written; the caller then writes batch by batch, which retries and falls back per
batch. Not for a Redis Cluster, whose batches live on several nodes, nor for a write that must
first check the batch is held in full (stores/durable.py): both go batch by batch.
"""

import asyncio
from collections.abc import Callable, Sequence

from redis.exceptions import WatchError

from batch_conductor_service.domain.batch_facts import facts_added_by
from batch_conductor_service.domain.batch_state import ApplyResult, BatchStateChange
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.redis.apply import dedupe
from batch_conductor_service.stores.redis.client import BatchStateRedis
from batch_conductor_service.stores.redis.keys import BatchKeys
from batch_conductor_service.stores.redis.scripted_writes import SADD_CHUNK, ScriptedWrites
from batch_conductor_service.stores.redis.writes import (
    queue_event_ids,
    queue_facts,
    queue_present_marker,
    queue_ttl,
)

# KEYS: the batches' events sets. ARGV: per key, how many ids, then the ids. Answers, per key,
# SMISMEMBER's flags for its ids (asked in chunks: Lua's unpack() holds about 8,000 values).
SEEN_SCRIPT = f"""
local out, i = {{}}, 1
for k = 1, #KEYS do
  local last, flags = i + tonumber(ARGV[i]), {{}}
  local first = i + 1
  while first <= last do
    local stop = math.min(first + {SADD_CHUNK - 1}, last)
    for _, flag in ipairs(redis.call('SMISMEMBER', KEYS[k], unpack(ARGV, first, stop))) do
      flags[#flags + 1] = flag
    end
    first = stop + 1
  end
  out[k] = flags
  i = last + 1
end
return out
"""
# Above about this many event ids and members, a fetch's batches go in several transactions
# (side by side): one script runs alone on the server, and /define's reads wait behind it.
MAX_MEMBERS_PER_TRANSACTION = 20_000

Group = tuple[BatchKeys, list[BatchStateChange]]


class RedisFetchApplier:
    def __init__(self, client: BatchStateRedis, *, ttl_seconds: int, metrics: BcsMetrics) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._metrics = metrics

    async def apply_groups(
        self,
        keys_of: Callable[[str], BatchKeys],
        changes: Sequence[BatchStateChange],
        groups: dict[str, list[int]],
        results: list[ApplyResult | None],
    ) -> dict[str, list[int]]:
        """`groups` holds the indexes in `changes` of each batch's changes. Fills in the
        results of the groups written, and returns those a rival write left for writing batch
        by batch."""
        batches = [(keys_of(b), [changes[i] for i in ix]) for b, ix in groups.items()]
        left: dict[str, list[int]] = {}
        outcomes = await self.apply(batches)
        for (batch_id, indexes), outcome in zip(groups.items(), outcomes, strict=True):
            if outcome is None:
                left[batch_id] = indexes
                continue
            for i, result in zip(indexes, outcome, strict=True):
                results[i] = result
        if left:
            # Its own label: each batch's write then still counts its own retries as "apply".
            self._metrics.repository_atomic_retries.labels("apply_together").inc()
        return left

    async def apply(self, groups: Sequence[Group]) -> list[list[ApplyResult] | None]:
        """Per group, the result of each of its changes, or None for the groups of a
        transaction that a rival write to one of its batches aborted: nothing of those was
        written, and the caller writes them batch by batch."""
        if not groups:
            return []
        parts = _parts(groups)
        done = await asyncio.gather(*(self._apply_part(part) for part in parts))
        answers: list[list[ApplyResult] | None] = []
        for part, part_results in zip(parts, done, strict=True):
            answers += part_results if part_results is not None else [None] * len(part)
        return answers

    async def _apply_part(self, groups: Sequence[Group]) -> list[list[ApplyResult]] | None:
        async with self._client.pipeline(transaction=True) as pipe:
            await pipe.watch(*(keys.events for keys, _ in groups))
            args: list[str | int] = []
            for _, changes in groups:
                args += [len(changes), *(change.event_id for change in changes)]
            seen = await pipe.eval(SEEN_SCRIPT, len(groups), *(k.events for k, _ in groups), *args)
            pipe.multi()
            writes = ScriptedWrites()
            all_results: list[list[ApplyResult]] = []
            for (keys, changes), flags in zip(groups, seen, strict=True):
                known = {c.event_id for c, flag in zip(changes, flags, strict=True) if flag}
                results = dedupe(changes, known)
                applied = [
                    c for c, r in zip(changes, results, strict=True) if r is ApplyResult.APPLIED
                ]
                added = facts_added_by(keys.batch_id, applied)
                queue_facts(writes, keys, added)
                queue_event_ids(writes, keys, added.event_ids)
                queue_present_marker(writes, keys)
                queue_ttl(writes, keys, self._ttl)
                all_results.append(results)
            writes.queue_on(pipe)
            try:
                await pipe.execute()
            except WatchError:
                return None
        return all_results


def _parts(groups: Sequence[Group]) -> list[list[Group]]:
    """The groups in order, cut where a part would hold more than the cap (a part holds at
    least one group, whatever its size)."""
    parts: list[list[Group]] = [[]]
    size = 0
    for keys, changes in groups:
        members = sum(1 + len(c.roster or ()) + len(c.essay_outcomes) for c in changes)
        if parts[-1] and size + members > MAX_MEMBERS_PER_TRANSACTION:
            parts.append([])
            size = 0
        parts[-1].append((keys, changes))
        size += members
    return parts
