"""A batch's counts read from Redis in one round trip, without sending any essay over.

One Lua script (EVALSHA) checks that the batch is present, then returns the batch's counts hash
and its few batch-outcome members. The counts hash is derived data: when it is missing, the
script counts the batch's sets where they are and keeps the result, with the batch's TTL.
Every write of facts deletes it in the same transaction (or, on the fallback path, right after
the facts it follows), so it never describes fewer facts than a finished write stored; a script
runs atomically, so it never mixes facts from before and after a write. All its keys share the
batch's hash tag, so on a Redis Cluster it runs on the one node that holds the batch.
"""

import functools
import hashlib
from typing import Any, TypeGuard

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from batch_conductor_service.domain.batch_counts import BatchCounts, StepCounts
from batch_conductor_service.domain.batch_facts import latest_per_step
from batch_conductor_service.domain.batch_state import RosterSource
from batch_conductor_service.stores.redis.client import BatchStateRedis
from batch_conductor_service.stores.redis.integrity import held_markers
from batch_conductor_service.stores.redis.keys import (
    PRESENT_MARKER,
    ROSTER_MARKER,
    SEPARATOR,
    BatchKeys,
    parse_outcome_members,
)
from batch_conductor_service.stores.redis.read_channel import ReadChannel

# KEYS: events, registered roster, ready roster, succeeded, failed, outcomes, counts.
# ARGV: present marker, roster marker, separator, then the held markers of KEYS 2 to 6 (a set
# marked held but gone was lost: the script answers LOST_REPLY, see integrity.py).
# Field names: roster (-1 when unknown), source, bad:s and bad:f (members that do not parse),
# and per step
# s|f|rs|rf <separator> step (succeeded, failed only, and the same on the roster).
COUNT_SCRIPT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return false end
for i = 2, 6 do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i + 2]) == 1 and redis.call('EXISTS', KEYS[i]) == 0 then
    return -1
  end
end
local counts = redis.call('HGETALL', KEYS[7])
if #counts == 0 then
  local roster, source = nil, ''
  if redis.call('EXISTS', KEYS[3]) == 1 then roster, source = KEYS[3], 'ready'
  elseif redis.call('EXISTS', KEYS[2]) == 1 then roster, source = KEYS[2], 'registered' end
  local size = -1
  if roster then size = redis.call('SCARD', roster) - redis.call('SISMEMBER', roster, ARGV[2]) end
  local sep, tally, names = ARGV[3], {}, {}
  local function add(name)
    if tally[name] == nil then tally[name] = 0; names[#names + 1] = name end
    tally[name] = tally[name] + 1
  end
  local function count(key, prefix, skip_key)
    for _, member in ipairs(redis.call('SMEMBERS', key)) do
      local at = string.find(member, sep, 1, true)
      if not at then
        add('bad:' .. prefix)
      elseif not skip_key or redis.call('SISMEMBER', skip_key, member) == 0 then
        local step = string.sub(member, 1, at - 1)
        add(prefix .. sep .. step)
        if roster and redis.call('SISMEMBER', roster, string.sub(member, at + 1)) == 1 then
          add('r' .. prefix .. sep .. step)
        end
      end
    end
  end
  count(KEYS[4], 's', nil)
  count(KEYS[5], 'f', KEYS[4])
  counts = {'roster', tostring(size), 'source', source}
  for _, name in ipairs(names) do
    counts[#counts + 1] = name
    counts[#counts + 1] = tostring(tally[name])
  end
  redis.call('HSET', KEYS[7], unpack(counts))
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[7], ttl) end
end
local markers = 1
for i = 4, 8 do markers = markers + redis.call('SISMEMBER', KEYS[1], ARGV[i]) end
return {counts, redis.call('SMEMBERS', KEYS[6]), redis.call('SCARD', KEYS[1]) - markers}
"""
# The script's answer for a batch some of whose sets were lost.
LOST_REPLY = -1
COUNT_SCRIPT_SHA = hashlib.sha1(COUNT_SCRIPT.encode()).hexdigest()

_UNPARSED_FIELDS = {"bad:s": "succeeded", "bad:f": "failed"}
_STEP_FIELDS = {"s": "succeeded", "f": "failed", "rs": "roster_succeeded", "rf": "roster_failed"}


@functools.lru_cache(maxsize=4096)
def _script_call(keys: BatchKeys) -> tuple[str, ...]:
    """The script's number of keys, keys and arguments, as EVALSHA takes them after the sha.
    Spelled from the prefix and batch id alone, so the batches asked about most keep theirs
    (about 15 key names built per read otherwise)."""
    script_keys = (
        keys.events,
        keys.roster(RosterSource.REGISTERED),
        keys.roster(RosterSource.READY),
        keys.succeeded,
        keys.failed,
        keys.outcomes,
        keys.counts,
    )
    args = (PRESENT_MARKER, ROSTER_MARKER, SEPARATOR, *held_markers(keys))
    return (str(len(script_keys)), *script_keys, *args)


async def read_batch_counts(client: BatchStateRedis, keys: BatchKeys) -> Any:
    numkeys, *keys_and_args = _script_call(keys)
    try:
        return await client.evalsha(COUNT_SCRIPT_SHA, int(numkeys), *keys_and_args)
    except NoScriptError:
        # The first call on a server (or after SCRIPT FLUSH): EVAL caches it there for the next.
        return await client.eval(COUNT_SCRIPT, int(numkeys), *keys_and_args)


class CountReads:
    """A batch's count script, sent on one server through a read channel (concurrent requests'
    reads share its round trips; see read_channel.py), on a cluster by the client to the node
    that holds the batch."""

    def __init__(self, client: BatchStateRedis) -> None:
        self._client = client
        self._channel = ReadChannel.of(client) if _may_hold_a_connection(client) else None

    async def read(self, keys: BatchKeys) -> Any:
        channel = self._channel
        if channel is None:
            return await read_batch_counts(self._client, keys)
        call = _script_call(keys)
        try:
            return await channel.call("EVALSHA", COUNT_SCRIPT_SHA, *call)
        except NoScriptError:
            # The first call on a server (or after SCRIPT FLUSH): EVAL caches it there.
            return await channel.call("EVAL", COUNT_SCRIPT, *call)


def _may_hold_a_connection(client: BatchStateRedis) -> TypeGuard[Redis]:
    # The channel holds a connection for good: from a pool of one, nothing would be left for
    # the writes, so there the reads go through the client too.
    return isinstance(client, Redis) and client.connection_pool.max_connections > 1


def event_count_of(reply: Any) -> int | None:
    """How many event ids Redis holds for the batch (its version, compared with the record's);
    None when the reply holds no batch."""
    if not reply or reply == LOST_REPLY:
        return None
    return int(reply[2])


def counts_from_reply(batch_id: str, reply: Any) -> tuple[BatchCounts | None, dict[str, int]]:
    """The counts (None when Redis does not hold the batch in full), and how many members of
    each set did not parse (by set name), for the caller to report."""
    if not reply or reply == LOST_REPLY:
        return None, {}
    flat, outcome_members = reply[0], reply[1]
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    steps: dict[str, dict[str, int]] = {}
    unparsed: dict[str, int] = {}
    for name, value in fields.items():
        kind, separator, step = name.partition(SEPARATOR)
        if separator and kind in _STEP_FIELDS:
            steps.setdefault(step, {})[_STEP_FIELDS[kind]] = int(value)
        elif kind in _UNPARSED_FIELDS:
            unparsed[_UNPARSED_FIELDS[kind]] = int(value)
    outcomes, bad_outcomes = parse_outcome_members(outcome_members)
    if bad_outcomes:
        unparsed["outcomes"] = len(bad_outcomes)
    roster_size = int(fields["roster"])
    source = fields["source"]
    counts = BatchCounts(
        batch_id=batch_id,
        roster_size=None if roster_size < 0 else roster_size,
        roster_source=RosterSource(source) if source else None,
        steps={step: StepCounts(**numbers) for step, numbers in steps.items()},
        batch_outcomes=latest_per_step(outcomes),
    )
    return counts, unparsed
