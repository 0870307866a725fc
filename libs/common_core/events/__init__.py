"""Event contracts: the envelope, the payloads BCS consumes, and the dead-letter record."""

from common_core.events.batch_events import (
    BatchEssaysReady,
    BatchEssaysRegistered,
    ELSBatchPhaseOutcomeV1,
)
from common_core.events.building_blocks import (
    ContractModel,
    EntityReference,
    EssayProcessingInputRef,
    SystemMetadata,
)
from common_core.events.cj_events import CJAssessmentCompletedV1, CJAssessmentFailedV1, CJRanking
from common_core.events.dead_letter import DeadLetterReason, DeadLetterRecord
from common_core.events.envelope import EventEnvelope
from common_core.events.essay_events import SpellcheckResultDataV1

__all__ = [
    "BatchEssaysReady",
    "BatchEssaysRegistered",
    "CJAssessmentCompletedV1",
    "CJAssessmentFailedV1",
    "CJRanking",
    "ContractModel",
    "DeadLetterReason",
    "DeadLetterRecord",
    "ELSBatchPhaseOutcomeV1",
    "EntityReference",
    "EssayProcessingInputRef",
    "EventEnvelope",
    "SpellcheckResultDataV1",
    "SystemMetadata",
]
