"""A fetch's writes to many batches in one WATCH/MULTI/EXEC, on one Redis server.

Batch by batch (apply.py), a fetch of 2,000 events over forty batches is forty transactions,
each paying redis-py's cost of a pipeline, a pinned connection, a WATCH, a read and an EXEC. On
one server they fit one: WATCH every batch's events set, read which of the event ids each
already holds and whether it is held in full (one script), then MULTI, one script with every
batch's writes (the same commands writes.py queues, batch after batch), EXEC. A rival write to
any of the batches aborts it all and nothing is written; the caller then writes those batches
batch by batch, which retries and falls back per batch. Not for a Redis Cluster, whose batches
live on several nodes: there every batch has its own transaction.
"""

import asyncio
from collections.abc import Callable, Sequence

from redis.exceptions import WatchError

from batch_conductor_service.domain.batch_state import ApplyResult, BatchStateChange
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.redis.apply import none_lost, queue_new_facts
from batch_conductor_service.stores.redis.client import BatchStateRedis
from batch_conductor_service.stores.redis.integrity import held_markers
from batch_conductor_service.stores.redis.keys import PRESENT_MARKER, BatchKeys
from batch_conductor_service.stores.redis.scripted_writes import SADD_CHUNK, ScriptedWrites

# KEYS: per batch, its events set, then its sets of facts (BatchKeys.fact_sets). ARGV: per
# batch, how many members to look for in its events set, then those. Answers, per batch,
# SMISMEMBER's flags for them (asked in chunks: Lua's unpack() holds about 8,000 values) and
# EXISTS of each set of facts.
KEYS_PER_BATCH = 6
SEEN_SCRIPT = f"""
local out, i = {{}}, 1
for b = 0, #KEYS / {KEYS_PER_BATCH} - 1 do
  local base, last, flags, there = b * {KEYS_PER_BATCH}, i + tonumber(ARGV[i]), {{}}, {{}}
  local first = i + 1
  while first <= last do
    local stop = math.min(first + {SADD_CHUNK - 1}, last)
    for _, flag in ipairs(redis.call('SMISMEMBER', KEYS[base + 1], unpack(ARGV, first, stop))) do
      flags[#flags + 1] = flag
    end
    first = stop + 1
  end
  for s = 2, {KEYS_PER_BATCH} do there[s - 1] = redis.call('EXISTS', KEYS[base + s]) end
  out[b + 1] = {{flags, there}}
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
        *,
        only_if_held: bool,
    ) -> dict[str, list[int]]:
        """`groups` holds the indexes in `changes` of each batch's changes. Fills in the
        results of the groups written (with `only_if_held`, a batch Redis does not hold in
        full is not written and its results stay None), and returns the groups a rival write
        left for writing batch by batch."""
        batches = [(keys_of(b), [changes[i] for i in ix]) for b, ix in groups.items()]
        parts = _parts(batches)
        done = await asyncio.gather(*(self._apply_part(part, only_if_held) for part in parts))
        outcomes: list[list[ApplyResult] | _Aborted | None] = []
        for part, part_outcomes in zip(parts, done, strict=True):
            if isinstance(part_outcomes, _Aborted):
                outcomes += [part_outcomes] * len(part)
            else:
                outcomes += part_outcomes
        left: dict[str, list[int]] = {}
        for (batch_id, indexes), outcome in zip(groups.items(), outcomes, strict=True):
            if isinstance(outcome, _Aborted):
                left[batch_id] = indexes
            elif outcome is not None:
                for i, result in zip(indexes, outcome, strict=True):
                    results[i] = result
        if left:
            # Its own label: each batch's write then still counts its own retries as "apply".
            self._metrics.repository_atomic_retries.labels("apply_together").inc()
        return left

    async def _apply_part(
        self, groups: Sequence[Group], only_if_held: bool
    ) -> "list[list[ApplyResult] | None] | _Aborted":
        async with self._client.pipeline(transaction=True) as pipe:
            await pipe.watch(*(keys.events for keys, _ in groups))
            script_keys: list[str] = []
            args: list[str | int] = []
            for keys, changes in groups:
                script_keys += [keys.events, *(key for _, key in keys.fact_sets)]
                members = [PRESENT_MARKER, *held_markers(keys), *(c.event_id for c in changes)]
                args += [len(members), *members]
            replies = await pipe.eval(SEEN_SCRIPT, len(script_keys), *script_keys, *args)
            pipe.multi()
            writes = ScriptedWrites()
            outcomes: list[list[ApplyResult] | None] = []
            for (keys, changes), (flags, there) in zip(groups, replies, strict=True):
                marks = 1 + len(keys.fact_sets)
                present, held, seen = flags[0], flags[1:marks], flags[marks:]
                if only_if_held and not (present and none_lost(self._metrics, keys, held, there)):
                    outcomes.append(None)
                    continue
                known = {c.event_id for c, flag in zip(changes, seen, strict=True) if flag}
                outcomes.append(queue_new_facts(writes, keys, changes, known, self._ttl))
            writes.queue_on(pipe)
            try:
                await pipe.execute()
            except WatchError:
                return ABORTED
        return outcomes


class _Aborted:
    """A transaction a rival write aborted: none of its batches was written."""


ABORTED = _Aborted()


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
