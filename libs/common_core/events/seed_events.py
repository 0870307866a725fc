"""The seed era's payloads (docs/events.md): batch-level events of the Essay Lifecycle and Batch
Orchestrator, comparative-judgement results per batch (`entity_ref` is the batch) and per-essay
results."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from common_core.enums import BatchPhaseStatus
from common_core.events.building_blocks import (
    ContractModel,
    EntityReference,
    EssayProcessingInputRef,
    Identifier,
    MaybeIdentifier,
    NonEmptyStr,
    StepName,
    SystemMetadata,
)


def _parse_phase_status(value: object) -> object:
    return BatchPhaseStatus.parse(value) if isinstance(value, str) else value


class ELSBatchPhaseOutcomeV1(ContractModel):
    batch_id: Identifier
    phase_name: StepName
    phase_status: Annotated[BatchPhaseStatus, BeforeValidator(_parse_phase_status)]
    processed_essays: list[EssayProcessingInputRef] = Field(default_factory=list)
    failed_essay_ids: list[Identifier] = Field(default_factory=list)
    correlation_id: str | None = None


class BatchEssaysRegistered(ContractModel):
    event: str | None = None
    batch_id: Identifier
    expected_essay_count: int | None = None
    essay_ids: list[Identifier]
    metadata: SystemMetadata | None = None


class BatchEssaysReady(ContractModel):
    event: str | None = None
    batch_id: Identifier
    ready_essays: list[EssayProcessingInputRef]
    batch_entity: EntityReference | None = None
    metadata: SystemMetadata | None = None
    validation_failures: list[Any] | None = None
    total_files_processed: int | None = None


class CJRanking(ContractModel):
    # The original skipped a ranking whose essay id is falsy; so does BCS, the rest still count.
    els_essay_id: MaybeIdentifier = None
    rank: int | None = None
    score: float | None = None


class CJAssessmentCompletedV1(ContractModel):
    event_name: str | None = None
    entity_ref: EntityReference
    status: str | None = None
    system_metadata: SystemMetadata | None = None
    cj_assessment_job_id: str | None = None
    # The event alone says the batch's CJ step finished; missing rankings must not lose that.
    rankings: list[CJRanking] = Field(default_factory=list)


class CJAssessmentFailedV1(ContractModel):
    event_name: str | None = None
    entity_ref: EntityReference
    status: str | None = None
    system_metadata: SystemMetadata | None = None
    cj_assessment_job_id: str | None = None


class SpellcheckResultDataV1(ContractModel):
    event_name: str | None = None
    entity_ref: EntityReference
    timestamp: datetime | None = None
    # Any status string is accepted; only two of them are terminal (see EssayStatus).
    status: NonEmptyStr
    system_metadata: SystemMetadata | None = None
    original_text_storage_id: str | None = None
    storage_metadata: dict[str, Any] | None = None
    corrections_made: int | None = None

    @property
    def batch_id(self) -> str | None:
        """`entity_ref.parent_id`, else `system_metadata.entity.parent_id`; None when neither."""
        if self.entity_ref.parent_id is not None:
            return self.entity_ref.parent_id
        if self.system_metadata is not None:
            return self.system_metadata.entity.parent_id
        return None
