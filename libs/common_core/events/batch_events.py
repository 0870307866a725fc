"""Batch-level events of the Essay Lifecycle and Batch Orchestrator (docs/events.md)."""

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from common_core.enums import BatchPhaseStatus
from common_core.events.building_blocks import (
    ContractModel,
    EntityReference,
    EssayProcessingInputRef,
    Identifier,
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
