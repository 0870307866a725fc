"""Turns one consumed message into the change it makes to one batch. Pure: no I/O.

The tolerant reader of common_core reads both generations of the platform's payloads; this
module turns what an event says into a BatchStateChange. An essay result that names no batch
becomes an UnplacedEvent instead, for the placement step to give a batch (domain/placement.py).
A message that can never be processed raises UnprocessableEventError with the dead-letter
reason; a valid event may still have no effect (a status that is not terminal).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from batch_conductor_service.domain.batch_state import (
    BatchOutcome,
    BatchStateChange,
    EssayOutcome,
    EssayStepOutcome,
    RosterSource,
)
from batch_conductor_service.domain.placement import UnplacedResult
from common_core.events import (
    BatchResultReading,
    DeadLetterReason,
    EssayResultReading,
    ReadEvent,
    RosterReading,
    UnknownTopicError,
    UnreadableEventError,
    read_event,
)
from common_core.events.tolerant_reader import CONSUMED_TOPICS as _READABLE_TOPICS
from common_core.events.topic_formats import CJ_ASSESSMENT_STEP, SPELLCHECK_STEP

CONSUMED_TOPICS: tuple[str, ...] = _READABLE_TOPICS
# The steps named here rather than by the event: the pipelines file must have each of them,
# which start-up checks (a phase outcome names its step in its payload).
STEPS_REPORTED_BY_EVENTS: dict[str, str] = {
    SPELLCHECK_STEP: "spellcheck results",
    CJ_ASSESSMENT_STEP: "CJ assessment completed and failed events",
}


class UnprocessableEventError(ValueError):
    """The message itself is wrong: retrying cannot help, it belongs in the dead-letter topic."""

    def __init__(self, reason: DeadLetterReason, detail: str, correlation_id: str | None = None):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.correlation_id = correlation_id


@dataclass(frozen=True, slots=True)
class TranslatedEvent:
    change: BatchStateChange
    correlation_id: str | None


@dataclass(frozen=True, slots=True)
class UnplacedEvent:
    """An essay result without a batch id. `result` None: its status is not terminal, so
    there is nothing to place (the event is valid and changes nothing)."""

    event_id: str
    essay_id: str
    result: UnplacedResult | None
    correlation_id: str | None


def translate(topic: str, raw: bytes | None) -> TranslatedEvent | UnplacedEvent:
    if topic not in _READABLE_TOPICS:
        raise UnprocessableEventError(
            DeadLetterReason.SCHEMA_VALIDATION_FAILED, f"no event contract for topic {topic!r}"
        )
    try:
        document = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        # orjson rejects bytes that are not UTF-8 with the same error as bad JSON.
        raise UnprocessableEventError(DeadLetterReason.INVALID_JSON, str(exc)) from None
    try:
        read = read_event(topic, document)
    except UnknownTopicError as exc:
        raise UnprocessableEventError(DeadLetterReason.SCHEMA_VALIDATION_FAILED, str(exc)) from None
    except UnreadableEventError as exc:
        raise UnprocessableEventError(
            DeadLetterReason.SCHEMA_VALIDATION_FAILED, exc.detail, exc.correlation_id
        ) from None
    return _translated(read)


def _translated(read: ReadEvent) -> TranslatedEvent | UnplacedEvent:
    reading = read.reading
    if isinstance(reading, RosterReading):
        return _change(
            read,
            reading.batch_id,
            roster=reading.essay_ids,
            roster_source=RosterSource(reading.kind.value),
        )
    if isinstance(reading, EssayResultReading):
        return _essay_result(read, reading)
    return _batch_result(read, reading)


def _change(read: ReadEvent, batch_id: str, **facts: Any) -> TranslatedEvent:
    change = BatchStateChange(
        event_id=read.event_id, batch_id=batch_id, occurred_at=read.occurred_at, **facts
    )
    return TranslatedEvent(change=change, correlation_id=read.correlation_id)


def _essay_result(read: ReadEvent, reading: EssayResultReading) -> TranslatedEvent | UnplacedEvent:
    outcome = _outcome(reading.succeeded)
    if reading.batch_id is None:
        result = (
            None
            if outcome is None
            else _unplaced(read.event_id, reading, outcome, read.occurred_at)
        )
        return UnplacedEvent(read.event_id, reading.essay_id, result, read.correlation_id)
    outcomes = (
        () if outcome is None else (EssayStepOutcome(reading.essay_id, reading.step, outcome),)
    )
    return _change(read, reading.batch_id, essay_outcomes=outcomes)


def _unplaced(
    event_id: str, reading: EssayResultReading, outcome: EssayOutcome, occurred_at: datetime
) -> UnplacedResult:
    return UnplacedResult(event_id, reading.essay_id, reading.step, outcome, occurred_at)


def _batch_result(read: ReadEvent, reading: BatchResultReading) -> TranslatedEvent:
    outcomes = tuple(
        [EssayStepOutcome(e, reading.step, EssayOutcome.SUCCEEDED) for e in reading.succeeded]
        + [EssayStepOutcome(e, reading.step, EssayOutcome.FAILED) for e in reading.failed]
    )
    if reading.status is None:
        return _change(read, reading.batch_id, essay_outcomes=outcomes)
    return _change(
        read,
        reading.batch_id,
        essay_outcomes=outcomes,
        batch_outcome_step=reading.step,
        batch_outcome=BatchOutcome(reading.status, read.occurred_at),
    )


def _outcome(succeeded: bool | None) -> EssayOutcome | None:
    if succeeded is None:
        return None
    return EssayOutcome.SUCCEEDED if succeeded else EssayOutcome.FAILED
