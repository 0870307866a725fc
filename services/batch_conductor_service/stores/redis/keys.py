"""Where one batch lives in Redis, and how its facts are spelled as set members.

Every key of a batch embeds the hash tag `{<batch_id>}`, so the whole batch sits in one Redis
Cluster slot and one WATCH/MULTI/EXEC can cover it. All facts are set members: adding one is a
single commutative command, which is what lets the non-atomic fallback lose nothing.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from batch_conductor_service.domain.batch_state import BatchOutcome, RosterSource
from common_core.enums import BatchPhaseStatus
from common_core.timestamps import as_utc

# Unit separator: never part of a step name, and splitting at its first occurrence keeps any
# essay id intact.
SEPARATOR = "\x1f"

# Added to the events set by every write. Its presence means "this batch's state is here in
# full"; its absence means the batch is unknown or expired (and may need a rebuild).
PRESENT_MARKER = "\x00present"

# Prefix of the members of the events set that say which sets of facts the batch has
# (BatchKeys.fact_sets). Like every marker it starts with NUL, which no event id can hold.
HELD_MARKER_PREFIX = "\x00held:"

# Added to a roster set with every roster written to it, so that an empty roster (a batch where no
# essay became ready) is still there and still replaces the registered one. Stripped on read.
ROSTER_MARKER = "\x00roster"


def hash_tag(batch_id: str) -> str:
    """The batch id as it sits between the braces of its keys' hash tag.

    Redis Cluster hashes what lies between a key's first `{` and the next `}`, or the whole key
    when that is empty. A `}` in the id would end the tag early (a leading one leaves it empty,
    so the batch's keys scatter across slots), so braces are percent-encoded, and `%` too so the
    encoding cannot collide; an id without any of the three is its own tag, as before.
    """
    if "%" not in batch_id and "{" not in batch_id and "}" not in batch_id:
        return batch_id
    return batch_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


@dataclass(frozen=True, slots=True)
class BatchKeys:
    prefix: str
    batch_id: str

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{{{hash_tag(self.batch_id)}}}:{name}"

    @property
    def events(self) -> str:
        return self._key("events")

    @property
    def succeeded(self) -> str:
        return self._key("succeeded")

    @property
    def failed(self) -> str:
        return self._key("failed")

    @property
    def outcomes(self) -> str:
        return self._key("outcomes")

    @property
    def last_event(self) -> str:
        """A sorted set of one member, LAST_EVENT_MEMBER, scored by the newest event time."""
        return self._key("last_event")

    @property
    def counts(self) -> str:
        """Derived from the sets, by reads (counts.py); not in `all`, as no write creates it:
        every write of facts deletes it."""
        return self._key("counts")

    def roster(self, source: RosterSource) -> str:
        return self._key(f"roster:{source.value}")

    @property
    def fact_sets(self) -> tuple[tuple[str, str], ...]:
        """(held marker, key) of every set of facts: a writer adds a set's marker to the events
        set once the set holds something, so a read can tell a set that was lost (evicted, or
        gone in a failover) from one never written."""
        return (
            (HELD_MARKER_PREFIX + "roster:registered", self.roster(RosterSource.REGISTERED)),
            (HELD_MARKER_PREFIX + "roster:ready", self.roster(RosterSource.READY)),
            (HELD_MARKER_PREFIX + "succeeded", self.succeeded),
            (HELD_MARKER_PREFIX + "failed", self.failed),
            (HELD_MARKER_PREFIX + "outcomes", self.outcomes),
        )

    @property
    def all(self) -> tuple[str, ...]:
        return (
            self.events,
            self.succeeded,
            self.failed,
            self.outcomes,
            self.last_event,
            *(self.roster(source) for source in RosterSource),
        )


LAST_EVENT_MEMBER = "at"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_time_score(occurred_at: datetime) -> int:
    """Microseconds since the epoch: exact in a sorted-set score (a double) until the year 2255,
    and ZADD GT keeps the largest, so the last event time is a commutative write like the rest."""
    delta = as_utc(occurred_at) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def event_time_from_score(score: float | str | bytes | None) -> datetime | None:
    if score is None:
        return None
    return _EPOCH + timedelta(microseconds=int(float(score)))


def essay_member(step: str, essay_id: str) -> str:
    return f"{step}{SEPARATOR}{essay_id}"


def essays_by_step(members: Iterable[str]) -> tuple[dict[str, frozenset[str]], list[str]]:
    """Essay members back to essay ids per step, and the members that do not parse. Written as
    one tight loop: a /define runs it over every essay of the batch, and it was most of a
    10,000-essay read."""
    grouped: dict[str, list[str]] = {}
    unparsed: list[str] = []
    for member in members:
        step, separator, essay_id = member.partition(SEPARATOR)
        if not separator:
            unparsed.append(member)
            continue
        ids = grouped.get(step)
        if ids is None:
            grouped[step] = [essay_id]
        else:
            ids.append(essay_id)
    return {step: frozenset(ids) for step, ids in grouped.items()}, unparsed


def outcome_member(step: str, outcome: BatchOutcome) -> str:
    return SEPARATOR.join((step, as_utc(outcome.occurred_at).isoformat(), outcome.status.value))


def parse_outcome_members(
    members: Iterable[str],
) -> tuple[list[tuple[str, BatchOutcome]], list[str]]:
    """Outcome members back to (step, outcome) pairs, and the members that do not parse."""
    parsed: list[tuple[str, BatchOutcome]] = []
    unparsed: list[str] = []
    for member in members:
        try:
            step, occurred_at, status = member.split(SEPARATOR, 2)
            outcome = BatchOutcome(
                BatchPhaseStatus(status), as_utc(datetime.fromisoformat(occurred_at))
            )
        except ValueError:
            unparsed.append(member)
            continue
        parsed.append((step, outcome))
    return parsed, unparsed
