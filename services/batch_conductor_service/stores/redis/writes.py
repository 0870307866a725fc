"""The Redis commands that add facts (of changes, or of a rebuilt batch) to a batch's keys.

Every command is a set addition or a TTL refresh, so any interleaving of them ends in the same
state; the atomic path wraps them in MULTI/EXEC, the fallback sends them as they are.
"""

from collections.abc import Iterable
from typing import Any

from batch_conductor_service.domain.batch_facts import BatchFacts
from batch_conductor_service.domain.completion import outcome_finishes_step
from batch_conductor_service.stores.redis.keys import (
    LAST_EVENT_MEMBER,
    PRESENT_MARKER,
    ROSTER_MARKER,
    BatchKeys,
    essay_member,
    event_time_score,
    outcome_member,
)

# redis-py's Pipeline is generic over the connection's response type; the commands queued here
# do not depend on it.
Pipe = Any


def queue_facts(pipe: Pipe, keys: BatchKeys, facts: BatchFacts) -> None:
    """Adds the facts, not their event ids: the caller records those when it is safe to.

    In an order where no prefix of the commands proves a step complete that neither the state
    before nor the state after all of them proves (the fallback sends them one by one): what
    can only make a step incomplete first (a FAILED_CRITICALLY outcome), then the roster (which
    fixes which essays must finish), failures, successes, and last the outcomes that finish a
    step. A reader between two commands thus never prunes a step the whole change keeps.
    """
    failing = {s: o for s, o in facts.outcomes.items() if not outcome_finishes_step(o.status)}
    finishing = {s: o for s, o in facts.outcomes.items() if outcome_finishes_step(o.status)}
    markers = dict(keys.fact_sets)
    written: list[str] = []

    def add(key: str, *members: str) -> None:
        pipe.sadd(key, *members)
        written.append(key)

    if failing:
        add(keys.outcomes, *(outcome_member(s, o) for s, o in failing.items()))
    for source, roster in facts.rosters.items():
        # The marker makes even an empty roster a set that exists.
        add(keys.roster(source), ROSTER_MARKER, *roster)
    for target, by_step in ((keys.failed, facts.failed), (keys.succeeded, facts.succeeded)):
        members = [essay_member(step, essay) for step, ids in by_step.items() for essay in ids]
        if members:
            add(target, *members)
    if finishing:
        add(keys.outcomes, *(outcome_member(s, o) for s, o in finishing.items()))
    if written:
        # After the sets they name: a set's held marker never precedes what it vouches for.
        held = {marker for marker, key in markers.items() if key in written}
        pipe.sadd(keys.events, *sorted(held))
    # After the facts: a count kept before this point is dropped, one made after it saw them
    # (see counts.py). Even by a write without facts: the batch's sets may have gone (evicted)
    # while its counts stayed, and this write makes the batch present again.
    pipe.delete(keys.counts)
    if facts.last_event_at is not None:
        # GT: only a later time replaces the score, so writes in any order keep the newest.
        score = event_time_score(facts.last_event_at)
        pipe.zadd(keys.last_event, {LAST_EVENT_MEMBER: score}, gt=True)


def queue_event_ids(pipe: Pipe, keys: BatchKeys, event_ids: Iterable[str]) -> None:
    # Queued after the facts of the changes: an event id is only recorded once its facts are
    # written, so a write cut short is redone on redelivery instead of taken for a duplicate.
    if ids := list(event_ids):
        pipe.sadd(keys.events, *ids)


def queue_present_marker(pipe: Pipe, keys: BatchKeys) -> None:
    pipe.sadd(keys.events, PRESENT_MARKER)


def queue_ttl(pipe: Pipe, keys: BatchKeys, ttl_seconds: int) -> None:
    for key in keys.all:
        pipe.expire(key, ttl_seconds)
