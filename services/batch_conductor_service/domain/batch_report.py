"""What BCS knows of one batch, step by step, for an operator. Pure: built from the snapshot
/define reads, with the completion rule /define applies, so the two never disagree."""

from dataclasses import dataclass
from datetime import datetime

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
    steps = tuple(_step_report(step, snapshot) for step in (*graph.order, *sorted(recorded)))
    return BatchReport(
        batch_id=snapshot.batch_id,
        roster_size=None if snapshot.roster is None else len(snapshot.roster),
        roster_source=snapshot.roster_source,
        steps=steps,
        last_event_at=snapshot.last_event_at,
    )


def _step_report(step: str, snapshot: BatchSnapshot) -> StepReport:
    completion = step_completion(step, snapshot)
    return StepReport(
        step=step,
        essays_succeeded=len(snapshot.succeeded_for(step)),
        essays_failed=len(snapshot.failed_for(step)),
        latest_batch_outcome=snapshot.batch_outcomes.get(step),
        complete=completion.complete,
        reason=completion.reason,
    )
