"""A batch-level step outcome reported over HTTP (POST /internal/v1/phases/complete), as the
change it makes: the same kind of change an ELS phase outcome event makes, so it takes the same
store path. Pure.

Success records the step complete; `success: false` records it not complete (the original BCS
pruned the step either way). Every report is an event of its own, stamped with the time it was
received: the latest report decides, so a retried report changes nothing and a report that
contradicts an earlier one wins over it (true, false, true ends complete). A report id derived
from the body would make that third report look like a repeat of the first.
"""

import uuid
from datetime import datetime

from batch_conductor_service.domain.batch_state import BatchOutcome, BatchStateChange
from common_core.enums import BatchPhaseStatus


def reported_phase_change(
    batch_id: str,
    phase_name: str,
    success: bool,
    reported_at: datetime,
) -> BatchStateChange:
    status = (
        BatchPhaseStatus.COMPLETED_SUCCESSFULLY if success else BatchPhaseStatus.FAILED_CRITICALLY
    )
    return BatchStateChange(
        event_id=str(uuid.uuid4()),
        batch_id=batch_id,
        occurred_at=reported_at,
        batch_outcome_step=phase_name,
        batch_outcome=BatchOutcome(status, reported_at),
    )
