"""Every topic BCS consumes, with the payload formats of both generations it may carry.

Both spellcheck topics accept both spellcheck shapes and both outcome topics both outcome shapes:
the topic names a kind of event, the payload says which generation wrote it.
"""

from collections.abc import Mapping
from typing import Any

from common_core.enums import BatchPhaseStatus, EssayStatus, ProcessingStatus
from common_core.events.batch_events import (
    BatchEssaysReady,
    BatchEssaysRegistered,
    ELSBatchPhaseOutcomeV1,
)
from common_core.events.cj_events import CJAssessmentCompletedV1, CJAssessmentFailedV1
from common_core.events.current_events import (
    BatchEssaysReadyV2,
    BatchEssaysRegisteredV2,
    CJAssessmentCompletedV2,
    CJAssessmentFailedV2,
    ELSBatchPhaseOutcomeV2,
    SpellcheckPhaseCompletedV1,
)
from common_core.events.essay_events import SpellcheckResultDataV1
from common_core.events.payload_formats import Claim, PayloadFormat, has_paths
from common_core.events.readings import (
    BatchResultReading,
    EssayResultReading,
    Generation,
    RosterKind,
    RosterReading,
)
from common_core.topics import CurrentTopic, Topic

# Step names as pipelines.yaml spells them.
SPELLCHECK_STEP = "spellcheck"
CJ_ASSESSMENT_STEP = "cj_assessment"

SEED, CURRENT = Generation.SEED_ERA, Generation.CURRENT

_SEED_SPELLCHECK_OUTCOMES = {
    EssayStatus.SPELLCHECKED_SUCCESS.value: True,
    EssayStatus.SPELLCHECK_FAILED.value: False,
}
_CURRENT_SPELLCHECK_OUTCOMES = {
    ProcessingStatus.COMPLETED.value: True,
    ProcessingStatus.FAILED.value: False,
}


def _registered(data: BatchEssaysRegistered) -> RosterReading:
    return RosterReading(data.batch_id, frozenset(data.essay_ids), RosterKind.REGISTERED)


def _registered_v2(data: BatchEssaysRegisteredV2) -> RosterReading:
    return RosterReading(data.entity_id, frozenset(data.essay_ids), RosterKind.REGISTERED)


def _ready(data: BatchEssaysReady | BatchEssaysReadyV2) -> RosterReading:
    essays = frozenset(essay.essay_id for essay in data.ready_essays)
    return RosterReading(data.batch_id, essays, RosterKind.READY)


def _spellcheck(data: SpellcheckResultDataV1) -> EssayResultReading:
    succeeded = _SEED_SPELLCHECK_OUTCOMES.get(data.status.lower())
    return EssayResultReading(data.entity_ref.entity_id, SPELLCHECK_STEP, data.batch_id, succeeded)


def _spellcheck_v2(data: SpellcheckPhaseCompletedV1) -> EssayResultReading:
    succeeded = _CURRENT_SPELLCHECK_OUTCOMES.get(data.status.lower())
    return EssayResultReading(data.entity_id, SPELLCHECK_STEP, data.batch_id, succeeded)


def _cj_completed(data: CJAssessmentCompletedV1) -> BatchResultReading:
    # Seed era: the event alone says the batch's CJ step finished; every ranked essay succeeded.
    ranked = tuple(dict.fromkeys(r.els_essay_id for r in data.rankings if r.els_essay_id))
    return BatchResultReading(
        data.entity_ref.entity_id,
        CJ_ASSESSMENT_STEP,
        BatchPhaseStatus.COMPLETED_SUCCESSFULLY,
        succeeded=ranked,
    )


def _cj_completed_v2(data: CJAssessmentCompletedV2) -> BatchResultReading:
    summary = data.processing_summary
    succeeded = tuple(dict.fromkeys(e for e in summary.successful_essay_ids if e))
    failed = tuple(e for e in dict.fromkeys(summary.failed_essay_ids) if e and e not in succeeded)
    return BatchResultReading(
        data.batch_id,
        CJ_ASSESSMENT_STEP,
        _cj_batch_status(data.status, succeeded, failed),
        succeeded=succeeded,
        failed=failed,
    )


def _cj_batch_status(
    status: str | None, succeeded: tuple[str, ...], failed: tuple[str, ...]
) -> BatchPhaseStatus:
    """The essays listed decide; an empty summary falls back to the producer's status, which
    is `failed_critically` when nothing succeeded (and the event still means CJ finished)."""
    if succeeded:
        if failed:
            return BatchPhaseStatus.COMPLETED_WITH_FAILURES
        return BatchPhaseStatus.COMPLETED_SUCCESSFULLY
    if failed or (status or "").strip().lower() == "failed_critically":
        return BatchPhaseStatus.FAILED_CRITICALLY
    return BatchPhaseStatus.COMPLETED_SUCCESSFULLY


def _cj_failed(data: CJAssessmentFailedV1 | CJAssessmentFailedV2) -> BatchResultReading:
    batch_id = (
        data.entity_ref.entity_id if isinstance(data, CJAssessmentFailedV1) else data.batch_id
    )
    return BatchResultReading(batch_id, CJ_ASSESSMENT_STEP, BatchPhaseStatus.FAILED_CRITICALLY)


def _outcome(data: ELSBatchPhaseOutcomeV1 | ELSBatchPhaseOutcomeV2) -> BatchResultReading:
    status = (
        data.phase_status
        if isinstance(data, ELSBatchPhaseOutcomeV1)
        else data.phase_status.phase_status
    )
    succeeded = sorted({essay.essay_id for essay in data.processed_essays})
    return BatchResultReading(
        data.batch_id,
        data.phase_name,
        status,
        succeeded=tuple(succeeded),
        failed=tuple(sorted(set(data.failed_essay_ids))),
    )


def _status_case(upper: bool) -> Claim:
    # The two ELS generations differ in the case of `phase_status` only.
    def claim(payload: Mapping[str, Any]) -> int:
        status = payload.get("phase_status")
        return int(isinstance(status, str) and status.isupper() == upper)

    return claim


_ROSTER_REGISTERED = (
    PayloadFormat(
        SEED, BatchEssaysRegistered, has_paths("batch_id", "metadata.entity"), _registered
    ),
    PayloadFormat(
        CURRENT,
        BatchEssaysRegisteredV2,
        has_paths("entity_id", "metadata.entity_id"),
        _registered_v2,
    ),
)
_ROSTER_READY = (
    PayloadFormat(
        SEED,
        BatchEssaysReady,
        has_paths(
            "batch_entity", "metadata.entity", "validation_failures", "total_files_processed"
        ),
        _ready,
    ),
    PayloadFormat(
        CURRENT,
        BatchEssaysReadyV2,
        has_paths("metadata.entity_id", "course_code", "course_language", "class_type"),
        _ready,
    ),
)
_SPELLCHECK = (
    PayloadFormat(
        SEED,
        SpellcheckResultDataV1,
        has_paths("entity_ref", "system_metadata", "original_text_storage_id", "event_name"),
        _spellcheck,
    ),
    PayloadFormat(
        CURRENT,
        SpellcheckPhaseCompletedV1,
        has_paths("entity_id", "batch_id", "processing_duration_ms", "corrected_text_storage_id"),
        _spellcheck_v2,
    ),
)
_CJ_COMPLETED = (
    PayloadFormat(
        SEED,
        CJAssessmentCompletedV1,
        has_paths("entity_ref", "rankings", "system_metadata.entity"),
        _cj_completed,
    ),
    PayloadFormat(
        CURRENT,
        CJAssessmentCompletedV2,
        has_paths("entity_id", "processing_summary", "system_metadata.entity_id"),
        _cj_completed_v2,
    ),
)
_CJ_FAILED = (
    PayloadFormat(
        SEED, CJAssessmentFailedV1, has_paths("entity_ref", "system_metadata.entity"), _cj_failed
    ),
    PayloadFormat(
        CURRENT,
        CJAssessmentFailedV2,
        has_paths("entity_id", "system_metadata.entity_id"),
        _cj_failed,
    ),
)
_OUTCOME = (
    PayloadFormat(SEED, ELSBatchPhaseOutcomeV1, _status_case(upper=True), _outcome),
    PayloadFormat(CURRENT, ELSBatchPhaseOutcomeV2, _status_case(upper=False), _outcome),
)

FORMATS_BY_TOPIC: dict[str, tuple[PayloadFormat[Any], ...]] = {
    Topic.BATCH_ESSAYS_REGISTERED: _ROSTER_REGISTERED,
    Topic.BATCH_ESSAYS_READY: _ROSTER_READY,
    Topic.SPELLCHECK_COMPLETED: _SPELLCHECK,
    CurrentTopic.SPELLCHECK_PHASE_COMPLETED: _SPELLCHECK,
    Topic.CJ_ASSESSMENT_COMPLETED: _CJ_COMPLETED,
    Topic.CJ_ASSESSMENT_FAILED: _CJ_FAILED,
    Topic.BATCH_PHASE_OUTCOME: _OUTCOME,
    CurrentTopic.BATCH_PHASE_OUTCOME: _OUTCOME,
}
