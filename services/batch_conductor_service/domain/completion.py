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

from batch_conductor_service.domain.batch_counts import BatchCounts, StepCounts, as_counts
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


def step_completion(step: str, state: BatchSnapshot | BatchCounts) -> StepCompletion:
    counts = as_counts(state)
    outcome = counts.batch_outcomes.get(step)
    if outcome is not None:
        if outcome_finishes_step(outcome.status):
            return StepCompletion(True, f"batch-level outcome {outcome.status.value}")
        return StepCompletion(False, f"latest batch-level outcome is {outcome.status.value}")
    return _completion_by_essays(counts.counts_for(step), counts.roster_size)


def _completion_by_essays(essays: StepCounts, roster_size: int | None) -> StepCompletion:
    if roster_size is None:
        if with_outcomes := essays.succeeded + essays.failed:
            return StepCompletion(
                False, f"{with_outcomes} essays have outcomes but the roster is unknown"
            )
        return StepCompletion(False, "no outcome recorded", has_evidence=False)
    if not roster_size:
        return StepCompletion(False, "the roster is empty")
    finished = essays.roster_succeeded + essays.roster_failed
    if finished < roster_size:
        return StepCompletion(False, f"{finished} of {roster_size} essays finished")
    if not essays.roster_succeeded:
        return StepCompletion(False, f"all {roster_size} essays on the roster failed")
    return StepCompletion(
        True,
        f"all {roster_size} essays on the roster finished "
        f"({essays.roster_succeeded} succeeded, {essays.roster_failed} failed)",
    )
