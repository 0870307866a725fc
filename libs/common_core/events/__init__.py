"""The platform's event contracts: the envelope, the payloads BCS consumes (both generations of
the platform) and the dead-letter record."""

from common_core.events.building_blocks import (
    ContractModel,
    EntityReference,
    EssayProcessingInputRef,
    SystemMetadata,
)
from common_core.events.current_events import (
    BatchEssaysReadyV2,
    BatchEssaysRegisteredV2,
    CJAssessmentCompletedV2,
    CJAssessmentFailedV2,
    ELSBatchPhaseOutcomeV2,
    FlatSystemMetadata,
    SpellcheckPhaseCompletedV1,
)
from common_core.events.dead_letter import DeadLetterReason, DeadLetterRecord
from common_core.events.envelope import EventEnvelope, RawEventEnvelope
from common_core.events.seed_events import (
    BatchEssaysReady,
    BatchEssaysRegistered,
    CJAssessmentCompletedV1,
    CJAssessmentFailedV1,
    CJRanking,
    ELSBatchPhaseOutcomeV1,
    SpellcheckResultDataV1,
)

__all__ = [
    "BatchEssaysReady",
    "BatchEssaysReadyV2",
    "BatchEssaysRegistered",
    "BatchEssaysRegisteredV2",
    "CJAssessmentCompletedV1",
    "CJAssessmentCompletedV2",
    "CJAssessmentFailedV1",
    "CJAssessmentFailedV2",
    "CJRanking",
    "ContractModel",
    "DeadLetterReason",
    "DeadLetterRecord",
    "ELSBatchPhaseOutcomeV1",
    "ELSBatchPhaseOutcomeV2",
    "EntityReference",
    "EssayProcessingInputRef",
    "EventEnvelope",
    "FlatSystemMetadata",
    "RawEventEnvelope",
    "SpellcheckPhaseCompletedV1",
    "SpellcheckResultDataV1",
    "SystemMetadata",
]
