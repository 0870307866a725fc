"""The Redis commands that add one change, or a whole stored batch, to a batch's keys.

Every command is a set addition or a TTL refresh, so any interleaving of them ends in the same
state; the atomic path wraps them in MULTI/EXEC, the fallback sends them as they are.
"""

from typing import Any

from batch_conductor_service.domain.batch_facts import StoredBatch
from batch_conductor_service.domain.batch_state import BatchStateChange, EssayOutcome
from batch_conductor_service.stores.redis.keys import (
    PRESENT_MARKER,
    ROSTER_MARKER,
    BatchKeys,
    essay_member,
    outcome_member,
)

# redis-py's Pipeline is generic over the connection's response type; the commands queued here
# do not depend on it.
Pipe = Any


def queue_change_facts(pipe: Pipe, keys: BatchKeys, change: BatchStateChange) -> None:
    if change.roster is not None and change.roster_source is not None:
        # The marker makes even an empty roster a set that exists.
        pipe.sadd(keys.roster(change.roster_source), ROSTER_MARKER, *change.roster)
    succeeded = [
        essay_member(o.step, o.essay_id)
        for o in change.essay_outcomes
        if o.outcome is EssayOutcome.SUCCEEDED
    ]
    failed = [
        essay_member(o.step, o.essay_id)
        for o in change.essay_outcomes
        if o.outcome is EssayOutcome.FAILED
    ]
    if succeeded:
        pipe.sadd(keys.succeeded, *succeeded)
    if failed:
        pipe.sadd(keys.failed, *failed)
    if change.batch_outcome_step is not None and change.batch_outcome is not None:
        pipe.sadd(keys.outcomes, outcome_member(change.batch_outcome_step, change.batch_outcome))


def queue_stored_batch(pipe: Pipe, keys: BatchKeys, stored: StoredBatch) -> None:
    for source, roster in stored.rosters.items():
        pipe.sadd(keys.roster(source), ROSTER_MARKER, *roster)
    for target, by_step in ((keys.succeeded, stored.succeeded), (keys.failed, stored.failed)):
        members = [essay_member(step, essay) for step, ids in by_step.items() for essay in ids]
        if members:
            pipe.sadd(target, *members)
    if stored.outcomes:
        pipe.sadd(keys.outcomes, *(outcome_member(s, o) for s, o in stored.outcomes.items()))
    if stored.event_ids:
        pipe.sadd(keys.events, *stored.event_ids)


def queue_event_ids(pipe: Pipe, keys: BatchKeys, event_ids: list[str]) -> None:
    # Queued after the facts of the changes: an event id is only recorded once its facts are
    # written, so a write cut short is redone on redelivery instead of taken for a duplicate.
    if event_ids:
        pipe.sadd(keys.events, *event_ids)


def queue_present_marker(pipe: Pipe, keys: BatchKeys) -> None:
    pipe.sadd(keys.events, PRESENT_MARKER)


def queue_ttl(pipe: Pipe, keys: BatchKeys, ttl_seconds: int) -> None:
    for key in keys.all:
        pipe.expire(key, ttl_seconds)
