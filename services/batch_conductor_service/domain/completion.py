"""When is a step complete for a batch: DESIGN.md's resolution rule 3, the only place it lives.

A step is complete only when the batch's state proves it:
  1. its latest batch-level outcome says it finished (`COMPLETED_SUCCESSFULLY` or
     `COMPLETED_WITH_FAILURES`; common_core's reader names a CJ completed event's status by the
     essays it lists, a CJ failed event's `FAILED_CRITICALLY`), or
  2. with no batch-level outcome, the roster is known and every essay on it has a terminal
     outcome for the step, at least one of them a success.
A latest outcome of `FAILED_CRITICALLY` leaves the step incomplete, whatever its essays did. An
unknown batch has nothing complete; one essay finishing out of thirty completes nothing.
"""

from dataclasses import dataclass

from batch_conductor_service.domain.batch_state import BatchSnapshot
from common_core.enums import BatchPhaseStatus

FINISHING_STATUSES = frozenset(
    {BatchPhaseStatus.COMPLETED_SUCCESSFULLY, BatchPhaseStatus.COMPLETED_WITH_FAILURES}
)


def outcome_finishes_step(status: BatchPhaseStatus) -> bool:
    return status in FINISHING_STATUSES


@dataclass(frozen=True, slots=True)
class StepCompletion:
    complete: bool
    reason: str
    # False when the batch holds nothing at all about the step: nothing worth telling the
    # caller beyond "not complete".
    has_evidence: bool = True


def step_completion(step: str, snapshot: BatchSnapshot) -> StepCompletion:
    outcome = snapshot.batch_outcomes.get(step)
    if outcome is not None:
        if outcome_finishes_step(outcome.status):
            return StepCompletion(True, f"batch-level outcome {outcome.status.value}")
        return StepCompletion(False, f"latest batch-level outcome is {outcome.status.value}")
    return _completion_by_essays(step, snapshot)


def _completion_by_essays(step: str, snapshot: BatchSnapshot) -> StepCompletion:
    succeeded = snapshot.succeeded_for(step)
    failed = snapshot.failed_for(step)
    roster = snapshot.roster
    if roster is None:
        if succeeded or failed:
            return StepCompletion(
                False,
                f"{len(succeeded) + len(failed)} essays have outcomes but the roster is unknown",
            )
        return StepCompletion(False, "no outcome recorded", has_evidence=False)
    if not roster:
        return StepCompletion(False, "the roster is empty")
    done_ok = roster & succeeded
    done_failed = (roster & failed) - done_ok
    finished = len(done_ok) + len(done_failed)
    if finished < len(roster):
        return StepCompletion(False, f"{finished} of {len(roster)} essays finished")
    if not done_ok:
        return StepCompletion(False, f"all {len(roster)} essays on the roster failed")
    return StepCompletion(
        True,
        f"all {len(roster)} essays on the roster finished "
        f"({len(done_ok)} succeeded, {len(done_failed)} failed)",
    )
