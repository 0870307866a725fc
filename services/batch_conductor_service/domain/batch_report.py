"""What BCS knows of one batch, step by step, for an operator. Pure: built from the counts
/define reads, with the completion rule /define applies, so the two never disagree."""

from dataclasses import dataclass

from batch_conductor_service.domain.batch_state import BatchCounts, StepOutcome, step_completion
from batch_conductor_service.domain.step_graph import StepGraph


@dataclass(frozen=True, slots=True)
class StepReport:
    step: str
    essays_succeeded: int
    essays_failed: int
    latest_batch_outcome: StepOutcome | None
    complete: bool
    # The evidence /define would give for pruning the step, or for not pruning it.
    reason: str


def report_steps(graph: StepGraph, counts: BatchCounts) -> tuple[StepReport, ...] | None:
    """None for a batch BCS holds nothing of (never seen, or expired). The graph's steps in
    order, then any step the batch has facts of that the graph lacks."""
    if counts.is_empty:
        return None
    recorded = ({*counts.steps, *counts.latest}) - set(graph.order)
    return tuple(_step_report(step, counts) for step in (*graph.order, *sorted(recorded)))


def _step_report(step: str, counts: BatchCounts) -> StepReport:
    completion = step_completion(step, counts)
    essays = counts.counts_for(step)
    return StepReport(
        step=step,
        essays_succeeded=essays.succeeded,
        essays_failed=essays.failed,
        latest_batch_outcome=counts.latest.get(step),
        complete=completion.complete,
        reason=completion.reason,
    )
