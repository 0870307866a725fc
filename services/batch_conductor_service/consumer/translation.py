"""Reads one consumed message, of either generation of the platform, into what it says about a
batch. Pure: no I/O.

Which payloads each topic may carry (both generations on every topic of a kind: the payload,
not the topic, says which generation wrote it), how each is read, and what it means to BCS: a
change to one batch, an essay result that names no batch (the rosters place it), or nothing. A
message that can never be processed raises UnprocessableEventError with its dead-letter reason.
The contracts themselves (envelope, payload models, topics) are the platform's, in common_core.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, NamedTuple, TypeVar

import orjson
from pydantic import ValidationError

from batch_conductor_service.domain.batch_state import (
    BatchChange,
    EssayResult,
    ParkedResult,
    RosterSource,
    StepOutcome,
)
from common_core.enums import BatchPhaseStatus, EssayStatus, ProcessingStatus
from common_core.events import (
    BatchEssaysReady,
    BatchEssaysReadyV2,
    BatchEssaysRegistered,
    BatchEssaysRegisteredV2,
    CJAssessmentCompletedV1,
    CJAssessmentCompletedV2,
    CJAssessmentFailedV1,
    CJAssessmentFailedV2,
    ContractModel,
    DeadLetterReason,
    ELSBatchPhaseOutcomeV1,
    ELSBatchPhaseOutcomeV2,
    RawEventEnvelope,
    SpellcheckPhaseCompletedV1,
    SpellcheckResultDataV1,
)
from common_core.topics import CurrentTopic, Topic
from common_core.validation_errors import describe_problems
from huleedu_service_libs.trace_context import NO_TRACE, TraceCarrier, carrier_from_metadata

# The steps events name themselves rather than in their payload: pipelines.yaml must define
# them, which start-up checks (a phase outcome names its step in its payload).
SPELLCHECK_STEP = "spellcheck"
CJ_ASSESSMENT_STEP = "cj_assessment"
STEPS_REPORTED_BY_EVENTS: dict[str, str] = {
    SPELLCHECK_STEP: "spellcheck results",
    CJ_ASSESSMENT_STEP: "CJ assessment completed and failed events",
}


class UnprocessableEventError(ValueError):
    """The message itself is wrong: retrying cannot help, it belongs in the dead-letter topic."""

    def __init__(
        self,
        reason: DeadLetterReason,
        detail: str,
        correlation_id: str | None = None,
        trace: TraceCarrier = NO_TRACE,
    ):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.correlation_id = correlation_id
        # The trace context the envelope's metadata carried, when it could be read that far.
        self.trace = trace


Said = BatchChange | ParkedResult | None


# Made once or more per consumed message: NamedTuples, immutable as frozen dataclasses are, are
# built in half their time.
class Event(NamedTuple):
    """One consumed event: its ids and what it says (None: a valid event that changes nothing,
    such as an essay status still under way)."""

    event_id: str
    correlation_id: str | None
    said: Said
    # The W3C trace context in the envelope's metadata (the platform's convention), if any.
    trace: TraceCarrier = NO_TRACE

    @property
    def batch_id(self) -> str | None:
        """The batch the event names (an essay result may name none)."""
        return self.said.batch_id if isinstance(self.said, BatchChange) else None


class _Envelope(NamedTuple):
    """What every payload's reading needs of its envelope."""

    event_id: str
    stamped_at: datetime
    # A batch outcome counts at the earlier of its stamp and its arrival: a producer whose
    # clock runs ahead cannot outrank a report that arrives after it.
    outcome_at: datetime

    def change(self, batch_id: str, **facts: Any) -> BatchChange:
        return BatchChange(batch_id, self.stamped_at, self.event_id, **facts)

    def essay_result(
        self, essay_id: str, step: str, batch_id: str | None, succeeded: bool | None
    ) -> Said:
        if batch_id is None:
            if succeeded is None:
                return None
            return ParkedResult(self.event_id, essay_id, step, succeeded, self.stamped_at)
        essays = () if succeeded is None else (EssayResult(essay_id, step, succeeded),)
        return self.change(batch_id, essays=essays)

    def batch_result(
        self,
        batch_id: str,
        step: str,
        status: BatchPhaseStatus | None,
        succeeded: Sequence[str] = (),
        failed: Sequence[str] = (),
    ) -> BatchChange:
        essays = (
            *(EssayResult(e, step, True) for e in succeeded),
            *(EssayResult(e, step, False) for e in failed),
        )
        if status is None:  # the phase is still under way: only the essays count
            return self.change(batch_id, essays=essays)
        outcome = StepOutcome(status, self.outcome_at)
        return self.change(batch_id, essays=essays, outcome_step=step, outcome=outcome)


ModelT = TypeVar("ModelT", bound=ContractModel)
# How strongly a payload claims to be written in a format: keys or values only it writes.
Claim = Callable[[Mapping[str, Any]], int]


@dataclass(frozen=True, slots=True)
class _Format(Generic[ModelT]):
    generation: str
    model: type[ModelT]
    claim: Claim
    read: Callable[[ModelT, _Envelope], Said]


def has_paths(*paths: str) -> Claim:
    """Counts which of these dotted key paths the payload has; runs for every format of every
    consumed event, so it walks them in one plain loop."""
    split = tuple(tuple(path.split(".")) for path in paths)

    def claim(payload: Mapping[str, Any]) -> int:
        found = 0
        for keys in split:
            node: Any = payload
            for key in keys:
                if type(node) is not dict or key not in node:
                    break
                node = node[key]
            else:
                found += 1
        return found

    return claim


def _status_case(upper: bool) -> Claim:
    # The two ELS generations differ in the case of `phase_status` only.
    def claim(payload: Mapping[str, Any]) -> int:
        status = payload.get("phase_status")
        return int(isinstance(status, str) and status.isupper() == upper)

    return claim


_SEED_SPELLCHECK = {
    EssayStatus.SPELLCHECKED_SUCCESS.value: True,
    EssayStatus.SPELLCHECK_FAILED.value: False,
}
_CURRENT_SPELLCHECK = {ProcessingStatus.COMPLETED.value: True, ProcessingStatus.FAILED.value: False}


def _registered(data: BatchEssaysRegistered, env: _Envelope) -> Said:
    roster = frozenset(data.essay_ids)
    return env.change(data.batch_id, roster=roster, roster_source=RosterSource.REGISTERED)


def _registered_v2(data: BatchEssaysRegisteredV2, env: _Envelope) -> Said:
    roster = frozenset(data.essay_ids)
    return env.change(data.entity_id, roster=roster, roster_source=RosterSource.REGISTERED)


def _ready(data: BatchEssaysReady | BatchEssaysReadyV2, env: _Envelope) -> Said:
    roster = frozenset(essay.essay_id for essay in data.ready_essays)
    return env.change(data.batch_id, roster=roster, roster_source=RosterSource.READY)


def _spellcheck(data: SpellcheckResultDataV1, env: _Envelope) -> Said:
    succeeded = _SEED_SPELLCHECK.get(data.status.lower())
    return env.essay_result(data.entity_ref.entity_id, SPELLCHECK_STEP, data.batch_id, succeeded)


def _spellcheck_v2(data: SpellcheckPhaseCompletedV1, env: _Envelope) -> Said:
    succeeded = _CURRENT_SPELLCHECK.get(data.status.lower())
    return env.essay_result(data.entity_id, SPELLCHECK_STEP, data.batch_id, succeeded)


def _cj_completed(data: CJAssessmentCompletedV1, env: _Envelope) -> Said:
    # Seed era: the event alone says the batch's CJ step finished; every ranked essay succeeded.
    ranked = tuple(dict.fromkeys(r.els_essay_id for r in data.rankings if r.els_essay_id))
    return env.batch_result(
        data.entity_ref.entity_id,
        CJ_ASSESSMENT_STEP,
        BatchPhaseStatus.COMPLETED_SUCCESSFULLY,
        succeeded=ranked,
    )


def _cj_completed_v2(data: CJAssessmentCompletedV2, env: _Envelope) -> Said:
    summary = data.processing_summary
    succeeded = tuple(dict.fromkeys(e for e in summary.successful_essay_ids if e))
    failed = tuple(e for e in dict.fromkeys(summary.failed_essay_ids) if e and e not in succeeded)
    # The essays listed decide; an empty summary falls back to the producer's status, which is
    # `failed_critically` when nothing succeeded (and the event still means CJ finished).
    if succeeded:
        status = (
            BatchPhaseStatus.COMPLETED_WITH_FAILURES
            if failed
            else BatchPhaseStatus.COMPLETED_SUCCESSFULLY
        )
    elif failed or (data.status or "").strip().lower() == "failed_critically":
        status = BatchPhaseStatus.FAILED_CRITICALLY
    else:
        status = BatchPhaseStatus.COMPLETED_SUCCESSFULLY
    return env.batch_result(data.batch_id, CJ_ASSESSMENT_STEP, status, succeeded, failed)


def _cj_failed(data: CJAssessmentFailedV1 | CJAssessmentFailedV2, env: _Envelope) -> Said:
    batch_id = (
        data.entity_ref.entity_id if isinstance(data, CJAssessmentFailedV1) else data.batch_id
    )
    return env.batch_result(batch_id, CJ_ASSESSMENT_STEP, BatchPhaseStatus.FAILED_CRITICALLY)


def _outcome(data: ELSBatchPhaseOutcomeV1 | ELSBatchPhaseOutcomeV2, env: _Envelope) -> Said:
    status = (
        data.phase_status
        if isinstance(data, ELSBatchPhaseOutcomeV1)
        else data.phase_status.phase_status
    )
    return env.batch_result(
        data.batch_id,
        data.phase_name,
        status,
        succeeded=sorted({essay.essay_id for essay in data.processed_essays}),
        failed=sorted(set(data.failed_essay_ids)),
    )


SEED, CURRENT = "seed-era", "current"
# Every topic takes a seed-era and a current format, in that order.
_Formats = tuple[_Format[Any], _Format[Any]]
_REGISTERED = (
    _Format(SEED, BatchEssaysRegistered, has_paths("batch_id", "metadata.entity"), _registered),
    _Format(
        CURRENT,
        BatchEssaysRegisteredV2,
        has_paths("entity_id", "metadata.entity_id"),
        _registered_v2,
    ),
)
_READY = (
    _Format(
        SEED,
        BatchEssaysReady,
        has_paths(
            "batch_entity", "metadata.entity", "validation_failures", "total_files_processed"
        ),
        _ready,
    ),
    _Format(
        CURRENT,
        BatchEssaysReadyV2,
        has_paths("metadata.entity_id", "course_code", "course_language", "class_type"),
        _ready,
    ),
)
_SPELLCHECK = (
    _Format(
        SEED,
        SpellcheckResultDataV1,
        has_paths("entity_ref", "system_metadata", "original_text_storage_id", "event_name"),
        _spellcheck,
    ),
    _Format(
        CURRENT,
        SpellcheckPhaseCompletedV1,
        has_paths("entity_id", "batch_id", "processing_duration_ms", "corrected_text_storage_id"),
        _spellcheck_v2,
    ),
)
_CJ_COMPLETED = (
    _Format(
        SEED,
        CJAssessmentCompletedV1,
        has_paths("entity_ref", "rankings", "system_metadata.entity"),
        _cj_completed,
    ),
    _Format(
        CURRENT,
        CJAssessmentCompletedV2,
        has_paths("entity_id", "processing_summary", "system_metadata.entity_id"),
        _cj_completed_v2,
    ),
)
_CJ_FAILED = (
    _Format(
        SEED, CJAssessmentFailedV1, has_paths("entity_ref", "system_metadata.entity"), _cj_failed
    ),
    _Format(
        CURRENT,
        CJAssessmentFailedV2,
        has_paths("entity_id", "system_metadata.entity_id"),
        _cj_failed,
    ),
)
_OUTCOME = (
    _Format(SEED, ELSBatchPhaseOutcomeV1, _status_case(upper=True), _outcome),
    _Format(CURRENT, ELSBatchPhaseOutcomeV2, _status_case(upper=False), _outcome),
)

FORMATS_BY_TOPIC: dict[str, _Formats] = {
    Topic.BATCH_ESSAYS_REGISTERED: _REGISTERED,
    Topic.BATCH_ESSAYS_READY: _READY,
    Topic.SPELLCHECK_COMPLETED: _SPELLCHECK,
    CurrentTopic.SPELLCHECK_PHASE_COMPLETED: _SPELLCHECK,
    Topic.CJ_ASSESSMENT_COMPLETED: _CJ_COMPLETED,
    Topic.CJ_ASSESSMENT_FAILED: _CJ_FAILED,
    Topic.BATCH_PHASE_OUTCOME: _OUTCOME,
    CurrentTopic.BATCH_PHASE_OUTCOME: _OUTCOME,
}
CONSUMED_TOPICS: tuple[str, ...] = tuple(str(topic) for topic in FORMATS_BY_TOPIC)


def translate(topic: str, value: bytes | None, received_at: datetime, max_skew: timedelta) -> Event:
    formats = FORMATS_BY_TOPIC.get(topic)
    if formats is None:
        raise UnprocessableEventError(
            DeadLetterReason.SCHEMA_VALIDATION_FAILED, f"no event contract for topic {topic!r}"
        )
    try:
        document = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        # orjson rejects bytes that are not UTF-8 with the same error as bad JSON.
        raise UnprocessableEventError(DeadLetterReason.INVALID_JSON, str(exc)) from None
    try:
        envelope = RawEventEnvelope.model_validate(document)
    except ValidationError as exc:
        correlation_id = document.get("correlation_id") if isinstance(document, dict) else None
        raise UnprocessableEventError(
            DeadLetterReason.SCHEMA_VALIDATION_FAILED,
            describe_problems(exc, limit=10),
            correlation_id if isinstance(correlation_id, str) else None,
            carrier_from_metadata(document.get("metadata"))
            if isinstance(document, dict)
            else NO_TRACE,
        ) from None
    trace = carrier_from_metadata(envelope.metadata)
    stamped_at = envelope.event_timestamp
    if stamped_at > received_at + max_skew:
        # A later outcome wins: no producer's clock is this far ahead of ours.
        raise UnprocessableEventError(
            DeadLetterReason.TIMESTAMP_IN_FUTURE,
            f"event_timestamp {stamped_at.isoformat()} is more than "
            f"{max_skew.total_seconds():g}s after this service's clock ({received_at.isoformat()})",
            envelope.correlation_id,
            trace,
        )
    env = _Envelope(envelope.event_id, stamped_at, min(stamped_at, received_at))
    try:
        said = _read_payload(formats, envelope.data, env, envelope.correlation_id)
    except UnprocessableEventError as exc:
        exc.trace = trace
        raise
    return Event(envelope.event_id, envelope.correlation_id, said, trace)


def _read_payload(
    formats: _Formats,
    payload: Mapping[str, Any],
    env: _Envelope,
    correlation_id: str | None,
) -> Said:
    """The two formats are tried in order of their claims (on a tie, seed era first) and the
    first that validates reads it. When neither does, the error is that of the format the
    payload claims more strongly: a seed-era result with one bad field is reported as that,
    not as a current one missing half its fields. On equal claims, the fewer errors decide."""
    seed, current = formats
    seed_claim, current_claim = seed.claim(payload), current.claim(payload)
    ranked = (current, seed) if current_claim > seed_claim else formats
    rejections: list[tuple[_Format[Any], ValidationError]] = []
    for fmt in ranked:
        try:
            data = fmt.model.model_validate(payload)
        except ValidationError as exc:
            rejections.append((fmt, exc))
            continue
        return fmt.read(data, env)
    (closest, error), (other, other_error) = rejections
    if seed_claim == current_claim and other_error.error_count() < error.error_count():
        closest, error = other, other_error
    problems = describe_problems(error, prefix="data.", root="data", limit=10)
    raise UnprocessableEventError(
        DeadLetterReason.SCHEMA_VALIDATION_FAILED,
        f"{closest.model.__name__} ({closest.generation}): {problems}",
        correlation_id,
    )
