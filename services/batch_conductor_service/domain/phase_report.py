"""A batch-level step outcome reported over HTTP (POST /internal/v1/phases/complete), as the
change it makes: the same kind of change an ELS phase outcome event makes, so it takes the same
store path. Pure.

Success records the step complete; `success: false` records it not complete (the original BCS
pruned the step either way). The event id is derived from the report itself, so a repeated
report (a retrying client) is recognised as a duplicate by the store.
"""

import uuid
from datetime import datetime

from batch_conductor_service.domain.batch_state import BatchOutcome, BatchStateChange
from common_core.enums import BatchPhaseStatus

# Fixed for good: changing it would make every earlier report look new.
_REPORT_NAMESPACE = uuid.UUID("5b0c7a8e-2f4d-4c1b-9e63-7d1a0f3b6c52")
_SEPARATOR = "\x1f"


def report_event_id(
    batch_id: str, phase_name: str, success: bool, correlation_id: str | None
) -> str:
    key = _SEPARATOR.join([batch_id, phase_name, str(success).lower(), correlation_id or ""])
    return str(uuid.uuid5(_REPORT_NAMESPACE, key))


def reported_phase_change(
    batch_id: str,
    phase_name: str,
    success: bool,
    correlation_id: str | None,
    reported_at: datetime,
) -> BatchStateChange:
    status = (
        BatchPhaseStatus.COMPLETED_SUCCESSFULLY if success else BatchPhaseStatus.FAILED_CRITICALLY
    )
    return BatchStateChange(
        event_id=report_event_id(batch_id, phase_name, success, correlation_id),
        batch_id=batch_id,
        occurred_at=reported_at,
        batch_outcome_step=phase_name,
        batch_outcome=BatchOutcome(status, reported_at),
    )
