"""Comparative-judgement results per batch (docs/events.md); `entity_ref` is the batch."""

from pydantic import Field

from common_core.events.building_blocks import (
    ContractModel,
    EntityReference,
    MaybeIdentifier,
    SystemMetadata,
)


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
