"""Where one batch lives in Redis, how its facts are spelled, and the count script that reads it.

Every key of a batch embeds the hash tag `{<batch_id>}`, so the batch sits in one Redis Cluster
slot and one WATCH/MULTI/EXEC covers it. A batch is two keys of facts and one of derived counts:

- `facts`, a hash: the version field `v` (present: the batch is held in full; with PostgreSQL,
  the record's version of it), `damaged` (Redis alone: a key of the batch was lost), the roster
  markers `reg` and `rdy` (a roster exists, even an empty one) and members `reg:<essay>` and
  `rdy:<essay>`, essay results `s:<step>\\x1f<essay>` (succeeded) and `f:<step>\\x1f<essay>`
  (failed), and with Redis alone the event ids applied, `id:<event id>`.
- `outcomes`, a sorted set: per step and status `<step>\\x1f<status>` scored by the latest time
  reported (microseconds since the epoch; ZADD GT keeps the latest, so writes in any order end
  alike), and `\\x00last` scored by the newest event time. At most three per step.
- `counts`, a hash the count script derives from the two and keeps until the next write.

Every write touches both keys of facts, so one without the other means the batch lost a key
(evicted, or gone in a failover): the count script answers LOST for it.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from batch_conductor_service.domain.batch_state import (
    BatchCounts,
    BatchFacts,
    RosterSource,
    StepCounts,
    latest_outcomes,
)
from common_core.enums import BatchPhaseStatus
from common_core.timestamps import as_utc

# Unit separator: never part of a step name, so splitting at it keeps any essay id whole.
SEPARATOR = "\x1f"
VERSION = "v"
DAMAGED = "damaged"
EVENT_ID = "id:"
SUCCEEDED = "s:"
FAILED = "f:"
ROSTER = {RosterSource.REGISTERED: "reg", RosterSource.READY: "rdy"}
LAST_EVENT = "\x00last"
# What the count script answers for a batch that lost one of its keys of facts.
LOST = "lost"


def hash_tag(batch_id: str) -> str:
    """The id as it sits between the braces of its keys' hash tag. Redis Cluster hashes what
    lies between a key's first `{` and the next `}`: braces in the id would end the tag early,
    so they are percent-encoded, and `%` too so the encoding cannot collide."""
    if "%" not in batch_id and "{" not in batch_id and "}" not in batch_id:
        return batch_id
    return batch_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


# The count script's keys, in KEYS order: the script's names for them are these too.
COUNT_KEYS = ("facts", "outcomes", "counts")


@dataclass(frozen=True, slots=True)
class BatchKeys:
    prefix: str
    batch_id: str

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{{{hash_tag(self.batch_id)}}}:{name}"

    @property
    def facts(self) -> str:
        return self._key("facts")

    @property
    def outcomes(self) -> str:
        return self._key("outcomes")

    @property
    def counts(self) -> str:
        return self._key("counts")

    @property
    def for_count_script(self) -> list[str]:
        base = self._key("")
        return [base + name for name in COUNT_KEYS]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def time_score(moment: datetime) -> int:
    """Microseconds since the epoch: exact in a sorted-set score (a double) until 2255."""
    delta = as_utc(moment) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def score_time(score: float | str) -> datetime:
    return _EPOCH + timedelta(microseconds=int(float(score)))


def fact_names(facts: BatchFacts, *, with_event_ids: bool) -> list[str]:
    """The hash fields that spell the facts (not the version): to be added, never replaced. A
    fact is its field's name; the value says nothing (empty)."""
    names: list[str] = []
    for source, essays in facts.rosters.items():
        names.append(ROSTER[source])
        names.extend(f"{ROSTER[source]}:{essay}" for essay in essays)
    for prefix, by_step in ((SUCCEEDED, facts.succeeded), (FAILED, facts.failed)):
        names.extend(
            f"{prefix}{step}{SEPARATOR}{essay}"
            for step, essays in by_step.items()
            for essay in essays
        )
    if with_event_ids:
        names.extend(EVENT_ID + event_id for event_id in facts.event_ids)
    return names


# Record separator: ids, step names and event ids never hold a control character (the edge
# refuses them: common_core's `printable`), so it can join field names into one argument.
NAME_SEPARATOR = "\x1e"


def joined_names(names: Sequence[str]) -> str:
    """The fields as ADD_FACTS_SCRIPT's one argument. Raises ValueError for a name holding the
    separator, which the edge never lets through: joined, it would split into other facts."""
    joined = NAME_SEPARATOR.join(names)
    if joined.count(NAME_SEPARATOR) != max(len(names) - 1, 0):
        raise ValueError("a fact's name holds the record separator (\\x1e)")
    return joined


# Adds empty-valued fields to the facts hash, their names joined into ARGV[1]: the one way facts
# are written, in the transaction and by the fallback alike. It exists for speed alone: redis-py's
# asyncio connections pack every argument in Python (about 1 us each), and a batch's facts are
# most of a write's arguments, two each as HSET's field and value. Sent with EVAL, never EVALSHA:
# inside MULTI, a script cache emptied meanwhile (a restart, a failover) would fail that one
# command while the rest of the transaction ran, and a cluster's redis-py pipeline refuses
# EVALSHA. HSET in chunks: Lua's unpack holds about 8,000.
ADD_FACTS_SCRIPT = """
local fields = {}
for name in string.gmatch(ARGV[1], '[^\\30]+') do
  fields[#fields + 1] = name
  fields[#fields + 1] = ''
end
for first = 1, #fields, 4000 do
  redis.call('HSET', KEYS[1], unpack(fields, first, math.min(first + 3999, #fields)))
end
"""


def outcome_scores(facts: BatchFacts) -> dict[str, int]:
    scores = {
        f"{step}{SEPARATOR}{status.value}": time_score(at)
        for (step, status), at in facts.outcomes.items()
    }
    if facts.last_event_at is not None:
        scores[LAST_EVENT] = time_score(facts.last_event_at)
    return scores


def pairs(flat: Sequence[Any]) -> list[tuple[Any, Any]]:
    """A flat [member, score, ...] list (as a script returns ZRANGE WITHSCORES) in pairs."""
    return list(zip(flat[::2], flat[1::2], strict=True))


def parse_outcomes(
    scored: Iterable[tuple[Any, Any]],
) -> tuple[dict[tuple[str, BatchPhaseStatus], datetime], datetime | None, int]:
    """(member, score) pairs of the outcomes key: the outcomes, the last event time, and how
    many members did not parse (left out, for the caller to report)."""
    outcomes: dict[tuple[str, BatchPhaseStatus], datetime] = {}
    last_event_at = None
    unparsed = 0
    for member, score in scored:
        if member == LAST_EVENT:
            last_event_at = score_time(score)
            continue
        step, _, status = str(member).partition(SEPARATOR)
        try:
            outcomes[(step, BatchPhaseStatus(status))] = score_time(score)
        except ValueError:
            unparsed += 1
    return outcomes, last_event_at, unparsed


# Returns nil for a batch Redis does not hold, {LOST} for one that lost a key of facts, else
# {version, counts hash as a flat list, outcomes with scores}. The counts are derived once per
# write: every write deletes them (in its transaction, or after its facts on the fallback path),
# and a script runs atomically, so they never describe fewer facts than a finished write stored.
COUNT_SCRIPT = f"""
local {", ".join(COUNT_KEYS)} = {", ".join(f"KEYS[{i}]" for i in range(1, len(COUNT_KEYS) + 1))}
local version = redis.call('HGET', facts, '{VERSION}')
local held = redis.call('EXISTS', outcomes)
if not version then
  if held == 1 then return {{'{LOST}'}} end
  return false
end
if held == 0 or redis.call('HEXISTS', facts, '{DAMAGED}') == 1 then return {{'{LOST}'}} end
local cached = redis.call('HGETALL', counts)
if #cached == 0 then
  local roster, source = nil, ''
  if redis.call('HEXISTS', facts, '{ROSTER[RosterSource.READY]}') == 1 then
    roster, source = '{ROSTER[RosterSource.READY]}:', '{RosterSource.READY.value}'
  elseif redis.call('HEXISTS', facts, '{ROSTER[RosterSource.REGISTERED]}') == 1 then
    roster, source = '{ROSTER[RosterSource.REGISTERED]}:', '{RosterSource.REGISTERED.value}'
  end
  local size, tally, names = -1, {{}}, {{}}
  if roster then size = 0 end
  local function add(name)
    if tally[name] == nil then tally[name] = 0; names[#names + 1] = name end
    tally[name] = tally[name] + 1
  end
  for _, name in ipairs(redis.call('HKEYS', facts)) do
    local kind = string.sub(name, 1, {len(SUCCEEDED)})
    if kind == '{SUCCEEDED}' or kind == '{FAILED}' then
      local rest = string.sub(name, {len(SUCCEEDED) + 1})
      local at = string.find(rest, '\\{ord(SEPARATOR)}', 1, true)
      if not at then
        add('bad' .. kind)
      elseif kind == '{SUCCEEDED}'
          or redis.call('HEXISTS', facts, '{SUCCEEDED}' .. rest) == 0 then
        local step = string.sub(rest, 1, at - 1)
        add(kind .. step)
        if roster and redis.call('HEXISTS', facts, roster .. string.sub(rest, at + 1)) == 1 then
          add('r' .. kind .. step)
        end
      end
    elseif roster and string.sub(name, 1, #roster) == roster then
      size = size + 1
    end
  end
  cached = {{'roster', tostring(size), 'source', source}}
  for _, name in ipairs(names) do
    cached[#cached + 1] = name
    cached[#cached + 1] = tostring(tally[name])
  end
  redis.call('HSET', counts, unpack(cached))
  local ttl = redis.call('PTTL', facts)
  if ttl > 0 then redis.call('PEXPIRE', counts, ttl) end
end
return {{version, cached, redis.call('ZRANGE', outcomes, 0, -1, 'WITHSCORES')}}
"""

_STEP_FIELDS = {
    SUCCEEDED: "succeeded",
    FAILED: "failed",
    "r" + SUCCEEDED: "roster_succeeded",
    "r" + FAILED: "roster_failed",
}


@dataclass(frozen=True, slots=True)
class CountReply:
    """The count script's answer: `counts` None when Redis does not hold the batch, `lost`
    when it held it but lost a key, `unparsed` the members left out as unreadable."""

    counts: BatchCounts | None
    version: int = 0
    lost: bool = False
    unparsed: int = 0


def parse_count_reply(batch_id: str, reply: Any) -> CountReply:
    if not reply:
        return CountReply(None)
    if reply[0] == LOST:
        return CountReply(None, lost=True)
    version, flat, outcome_members = reply
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    steps: dict[str, dict[str, int]] = {}
    unparsed = 0
    for name, value in fields.items():
        kind, colon, step = name.partition(":")
        if name.startswith("bad"):
            unparsed += int(value)
        elif colon and kind + colon in _STEP_FIELDS:
            steps.setdefault(step, {})[_STEP_FIELDS[kind + colon]] = int(value)
    outcomes, last_event_at, bad_outcomes = parse_outcomes(pairs(outcome_members))
    roster_size = int(fields["roster"])
    counts = BatchCounts(
        batch_id=batch_id,
        roster_size=None if roster_size < 0 else roster_size,
        roster_source=RosterSource(fields["source"]) if fields["source"] else None,
        steps={step: StepCounts(**numbers) for step, numbers in steps.items()},
        latest=latest_outcomes(outcomes.items()),
        last_event_at=last_event_at,
    )
    return CountReply(counts, int(version), unparsed=unparsed + bad_outcomes)
