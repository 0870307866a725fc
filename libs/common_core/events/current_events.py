"""The current platform's payloads (commit 52468214; docs/events.md and
tests/fixtures/huleedu/TOPICS.md).

They differ from the seed era's mostly in shape: the entity reference is flattened into the
payload (`entity_id`, `entity_type`, `parent_id`) and into the system metadata, CJ results list
essay ids in a processing summary instead of rankings, and spellcheck has a thin event of its
own. Only the fields BCS needs are required; the rest is read when present, never demanded.
"""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from common_core.enums import BatchStatus
from common_core.events.building_blocks import (
    ContractModel,
    EssayProcessingInputRef,
    Identifier,
    MaybeIdentifier,
    NonEmptyStr,
    StepName,
)


def _parse_batch_status(value: object) -> object:
    return BatchStatus.parse(value) if isinstance(value, str) else value


class FlatSystemMetadata(ContractModel):
    """The current system metadata: the entity reference's fields sit directly in it."""

    entity_id: Identifier
    entity_type: str | None = None
    parent_id: MaybeIdentifier = None
    timestamp: datetime | None = None
    processing_stage: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    event: str | None = None
    error_info: dict[str, Any] = Field(default_factory=dict)


class BatchEssaysRegisteredV2(ContractModel):
    """Current `huleedu.batch.essays.registered.v1`: the batch id is `entity_id`."""

    event: str | None = None
    entity_id: Identifier
    expected_essay_count: int | None = None
    essay_ids: list[Identifier]
    metadata: FlatSystemMetadata | None = None


class BatchEssaysReadyV2(ContractModel):
    """Current `huleedu.els.batch.essays.ready.v1`: flattened metadata, no `batch_entity`."""

    event: str | None = None
    batch_id: Identifier
    ready_essays: list[EssayProcessingInputRef]
    metadata: FlatSystemMetadata | None = None


class SpellcheckPhaseCompletedV1(ContractModel):
    """The thin per-essay event on `huleedu.batch.spellcheck.phase.completed.v1`."""

    entity_id: Identifier
    # Blank or absent: the essay is placed by the roster, as a seed-era result without parent.
    batch_id: MaybeIdentifier = None
    correlation_id: str | None = None
    # Any status is accepted; only `completed` and `failed` are terminal (ProcessingStatus).
    status: NonEmptyStr
    processing_duration_ms: int | None = None
    timestamp: datetime | None = None
    corrected_text_storage_id: str | None = None
    error_code: str | None = None


class CJProcessingSummary(ContractModel):
    # A blank id names no essay: skipped, as the original skipped falsy ones.
    successful_essay_ids: list[MaybeIdentifier] = Field(default_factory=list)
    failed_essay_ids: list[MaybeIdentifier] = Field(default_factory=list)


class CJAssessmentCompletedV2(ContractModel):
    """Current CJ completed: essays listed by outcome in `processing_summary`, no rankings."""

    event_name: str | None = None
    entity_id: MaybeIdentifier = None
    entity_type: str | None = None
    parent_id: MaybeIdentifier = None
    status: str | None = None
    system_metadata: FlatSystemMetadata
    cj_assessment_job_id: str | None = None
    processing_summary: CJProcessingSummary = Field(default_factory=CJProcessingSummary)

    @property
    def batch_id(self) -> str:
        """`entity_id`; when the producer left it out, the system metadata's entity."""
        return self.entity_id or self.system_metadata.entity_id


class CJAssessmentFailedV2(ContractModel):
    event_name: str | None = None
    entity_id: MaybeIdentifier = None
    entity_type: str | None = None
    parent_id: MaybeIdentifier = None
    status: str | None = None
    system_metadata: FlatSystemMetadata
    cj_assessment_job_id: str | None = None

    @property
    def batch_id(self) -> str:
        return self.entity_id or self.system_metadata.entity_id


class ELSBatchPhaseOutcomeV2(ContractModel):
    """Current ELS phase outcome: a lower-case BatchStatus, which may be one still under way."""

    batch_id: Identifier
    phase_name: StepName
    phase_status: Annotated[BatchStatus, BeforeValidator(_parse_batch_status)]
    processed_essays: list[EssayProcessingInputRef] = Field(default_factory=list)
    failed_essay_ids: list[Identifier] = Field(default_factory=list)
    correlation_id: str | None = None
