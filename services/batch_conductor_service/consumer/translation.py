"""Turns one consumed message into the change it makes to one batch. Pure: no I/O.

A message that can never be processed raises UnprocessableEventError with the dead-letter
reason; everything else becomes a BatchStateChange, possibly one with no effect (a
spellcheck status that is not terminal is still a valid event).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from batch_conductor_service.domain.batch_state import (
    BatchOutcome,
    BatchStateChange,
    EssayOutcome,
    EssayStepOutcome,
    RosterSource,
)
from batch_conductor_service.domain.completion import CJ_COMPLETED_STATUS, CJ_FAILED_STATUS
from common_core.enums import EssayStatus
from common_core.events import (
    BatchEssaysReady,
    BatchEssaysRegistered,
    CJAssessmentCompletedV1,
    CJAssessmentFailedV1,
    ContractModel,
    DeadLetterReason,
    ELSBatchPhaseOutcomeV1,
    EventEnvelope,
    SpellcheckResultDataV1,
)
from common_core.topics import Topic
from common_core.validation_errors import describe_problems

# Step names as pipelines.yaml spells them.
SPELLCHECK_STEP = "spellcheck"
CJ_ASSESSMENT_STEP = "cj_assessment"
# The steps named here rather than by the event: the pipelines file must have each of them,
# which start-up checks (a phase outcome names its step in its payload).
STEPS_REPORTED_BY_EVENTS: dict[str, str] = {
    SPELLCHECK_STEP: "spellcheck results",
    CJ_ASSESSMENT_STEP: "CJ assessment completed and failed events",
}

DataT = TypeVar("DataT", bound=ContractModel)

# Parametrised once: building EventEnvelope[Model] per message costs a quarter of a translation.
_REGISTERED_ENVELOPE = EventEnvelope[BatchEssaysRegistered]
_READY_ENVELOPE = EventEnvelope[BatchEssaysReady]
_SPELLCHECK_ENVELOPE = EventEnvelope[SpellcheckResultDataV1]
_CJ_COMPLETED_ENVELOPE = EventEnvelope[CJAssessmentCompletedV1]
_CJ_FAILED_ENVELOPE = EventEnvelope[CJAssessmentFailedV1]
_PHASE_OUTCOME_ENVELOPE = EventEnvelope[ELSBatchPhaseOutcomeV1]

_SPELLCHECK_OUTCOMES: dict[str, EssayOutcome] = {
    EssayStatus.SPELLCHECKED_SUCCESS: EssayOutcome.SUCCEEDED,
    EssayStatus.SPELLCHECK_FAILED: EssayOutcome.FAILED,
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


def translate(topic: str, raw: bytes | None) -> TranslatedEvent:
    try:
        translator = _TRANSLATORS[Topic(topic)]
    except (ValueError, KeyError):
        raise UnprocessableEventError(
            DeadLetterReason.SCHEMA_VALIDATION_FAILED, f"no event contract for topic {topic!r}"
        ) from None
    try:
        document = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        # orjson rejects bytes that are not UTF-8 with the same error as bad JSON.
        raise UnprocessableEventError(DeadLetterReason.INVALID_JSON, str(exc)) from None
    return translator(document)


def _envelope(envelope_type: type[EventEnvelope[DataT]], document: Any) -> EventEnvelope[DataT]:
    try:
        return envelope_type.model_validate(document)
    except ValidationError as exc:
        raise UnprocessableEventError(
            DeadLetterReason.SCHEMA_VALIDATION_FAILED,
            _summarise(exc),
            _correlation_id_of(document),
        ) from None


def _summarise(exc: ValidationError) -> str:
    return describe_problems(exc, limit=10)


def _correlation_id_of(document: Any) -> str | None:
    value = document.get("correlation_id") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None


def _change(envelope: EventEnvelope[Any], batch_id: str, **facts: Any) -> TranslatedEvent:
    change = BatchStateChange(
        event_id=envelope.event_id,
        batch_id=batch_id,
        occurred_at=envelope.event_timestamp,
        **facts,
    )
    return TranslatedEvent(change=change, correlation_id=envelope.correlation_id)


def _registered(document: Any) -> TranslatedEvent:
    envelope = _envelope(_REGISTERED_ENVELOPE, document)
    data = envelope.data
    return _change(
        envelope,
        data.batch_id,
        roster=frozenset(data.essay_ids),
        roster_source=RosterSource.REGISTERED,
    )


def _ready(document: Any) -> TranslatedEvent:
    envelope = _envelope(_READY_ENVELOPE, document)
    data = envelope.data
    return _change(
        envelope,
        data.batch_id,
        roster=frozenset(essay.essay_id for essay in data.ready_essays),
        roster_source=RosterSource.READY,
    )


def _spellcheck(document: Any) -> TranslatedEvent:
    envelope = _envelope(_SPELLCHECK_ENVELOPE, document)
    data = envelope.data
    batch_id = data.batch_id
    if batch_id is None:
        raise UnprocessableEventError(
            DeadLetterReason.UNPLACEABLE_EVENT,
            "spellcheck result names no batch: entity_ref.parent_id and "
            "system_metadata.entity.parent_id are both missing",
            envelope.correlation_id,
        )
    outcome = _SPELLCHECK_OUTCOMES.get(data.status.lower())
    outcomes = (
        (EssayStepOutcome(data.entity_ref.entity_id, SPELLCHECK_STEP, outcome),)
        if outcome is not None
        else ()
    )
    return _change(envelope, batch_id, essay_outcomes=outcomes)


def _cj_completed(document: Any) -> TranslatedEvent:
    envelope = _envelope(_CJ_COMPLETED_ENVELOPE, document)
    data = envelope.data
    outcomes = tuple(
        EssayStepOutcome(ranking.els_essay_id, CJ_ASSESSMENT_STEP, EssayOutcome.SUCCEEDED)
        for ranking in data.rankings
    )
    return _change(
        envelope,
        data.entity_ref.entity_id,
        essay_outcomes=outcomes,
        batch_outcome_step=CJ_ASSESSMENT_STEP,
        batch_outcome=BatchOutcome(CJ_COMPLETED_STATUS, envelope.event_timestamp),
    )


def _cj_failed(document: Any) -> TranslatedEvent:
    envelope = _envelope(_CJ_FAILED_ENVELOPE, document)
    return _change(
        envelope,
        envelope.data.entity_ref.entity_id,
        batch_outcome_step=CJ_ASSESSMENT_STEP,
        batch_outcome=BatchOutcome(CJ_FAILED_STATUS, envelope.event_timestamp),
    )


def _phase_outcome(document: Any) -> TranslatedEvent:
    envelope = _envelope(_PHASE_OUTCOME_ENVELOPE, document)
    data = envelope.data
    step = data.phase_name
    succeeded = {essay.essay_id for essay in data.processed_essays}
    outcomes = tuple(
        [EssayStepOutcome(e, step, EssayOutcome.SUCCEEDED) for e in sorted(succeeded)]
        + [
            EssayStepOutcome(e, step, EssayOutcome.FAILED)
            for e in sorted(set(data.failed_essay_ids))
        ]
    )
    return _change(
        envelope,
        data.batch_id,
        essay_outcomes=outcomes,
        batch_outcome_step=step,
        batch_outcome=BatchOutcome(data.phase_status, envelope.event_timestamp),
    )


_TRANSLATORS: dict[Topic, Callable[[Any], TranslatedEvent]] = {
    Topic.BATCH_ESSAYS_REGISTERED: _registered,
    Topic.BATCH_ESSAYS_READY: _ready,
    Topic.SPELLCHECK_COMPLETED: _spellcheck,
    Topic.CJ_ASSESSMENT_COMPLETED: _cj_completed,
    Topic.CJ_ASSESSMENT_FAILED: _cj_failed,
    Topic.BATCH_PHASE_OUTCOME: _phase_outcome,
}
CONSUMED_TOPICS: tuple[str, ...] = tuple(topic.value for topic in _TRANSLATORS)
