"""Comparative-judgement results per batch (CONTRACTS.md 2.2 and 2.3); `entity_ref` is the batch."""

from common_core.events.building_blocks import (
    ContractModel,
    EntityReference,
    NonEmptyStr,
    SystemMetadata,
)


class CJRanking(ContractModel):
    els_essay_id: NonEmptyStr
    rank: int | None = None
    score: float | None = None


class CJAssessmentCompletedV1(ContractModel):
    event_name: str | None = None
    entity_ref: EntityReference
    status: str | None = None
    system_metadata: SystemMetadata | None = None
    cj_assessment_job_id: str | None = None
    rankings: list[CJRanking]


class CJAssessmentFailedV1(ContractModel):
    event_name: str | None = None
    entity_ref: EntityReference
    status: str | None = None
    system_metadata: SystemMetadata | None = None
    cj_assessment_job_id: str | None = None
