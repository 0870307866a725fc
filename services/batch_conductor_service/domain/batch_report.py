"""What BCS knows of one batch, step by step, for an operator. Pure: built from the snapshot
/define reads, with the completion rule /define applies, so the two never disagree."""

from dataclasses import dataclass
from datetime import datetime

from batch_conductor_service.domain.batch_counts import BatchCounts
from batch_conductor_service.domain.batch_state import BatchOutcome, BatchSnapshot, RosterSource
from batch_conductor_service.domain.completion import step_completion
from batch_conductor_service.domain.step_graph import StepGraph


@dataclass(frozen=True, slots=True)
class StepReport:
    step: str
    essays_succeeded: int
    essays_failed: int
    latest_batch_outcome: BatchOutcome | None
    complete: bool
    # The evidence /define would give for pruning the step, or for not pruning it.
    reason: str


@dataclass(frozen=True, slots=True)
class BatchReport:
    batch_id: str
    roster_size: int | None
    roster_source: RosterSource | None
    steps: tuple[StepReport, ...]
    last_event_at: datetime | None


def report_batch(graph: StepGraph, snapshot: BatchSnapshot) -> BatchReport | None:
    """None for a batch BCS holds nothing of (never seen, or expired)."""
    if snapshot.is_empty:
        return None
    # The graph's steps in order, then any step the batch has facts of that the graph lacks.
    recorded = (
        set(snapshot.succeeded) | set(snapshot.failed) | set(snapshot.batch_outcomes)
    ) - set(graph.order)
    counts = BatchCounts.of(snapshot)
    steps = tuple(_step_report(step, counts) for step in (*graph.order, *sorted(recorded)))
    return BatchReport(
        batch_id=snapshot.batch_id,
        roster_size=None if snapshot.roster is None else len(snapshot.roster),
        roster_source=snapshot.roster_source,
        steps=steps,
        last_event_at=snapshot.last_event_at,
    )


def _step_report(step: str, counts: BatchCounts) -> StepReport:
    completion = step_completion(step, counts)
    essays = counts.counts_for(step)
    return StepReport(
        step=step,
        essays_succeeded=essays.succeeded,
        essays_failed=essays.failed,
        latest_batch_outcome=counts.batch_outcomes.get(step),
        complete=completion.complete,
        reason=completion.reason,
    )
