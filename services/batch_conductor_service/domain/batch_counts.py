"""What /define needs of a batch: how many essays, not which. Pure.

Resolving a pipeline needs the roster's size, per step how many essays succeeded and how many
only failed (all of them, and those on the roster), and the latest batch-level outcome of each
step. A store can count these where the facts live (Redis, PostgreSQL) so an answer costs the
same for 30 essays or 10,000; `BatchCounts.of` counts them from a snapshot, by the same rule.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from batch_conductor_service.domain.batch_state import BatchOutcome, BatchSnapshot, RosterSource


@dataclass(frozen=True, slots=True)
class StepCounts:
    """Essays with an outcome for one step. An essay that succeeded counts as succeeded only,
    whatever failures were also reported for it (a success outranks a failure)."""

    succeeded: int = 0
    failed: int = 0
    roster_succeeded: int = 0
    roster_failed: int = 0


NO_COUNTS = StepCounts()


@dataclass(frozen=True, slots=True)
class BatchCounts:
    batch_id: str
    roster_size: int | None = None
    roster_source: RosterSource | None = None
    steps: Mapping[str, StepCounts] = field(default_factory=dict)
    batch_outcomes: Mapping[str, BatchOutcome] = field(default_factory=dict)

    def counts_for(self, step: str) -> StepCounts:
        return self.steps.get(step, NO_COUNTS)

    @classmethod
    def of(cls, snapshot: BatchSnapshot) -> "BatchCounts":
        roster = snapshot.roster
        steps: dict[str, StepCounts] = {}
        for step in {*snapshot.succeeded, *snapshot.failed}:
            succeeded = snapshot.succeeded_for(step)
            failed = snapshot.failed_for(step) - succeeded
            steps[step] = StepCounts(
                succeeded=len(succeeded),
                failed=len(failed),
                roster_succeeded=0 if roster is None else len(roster & succeeded),
                roster_failed=0 if roster is None else len(roster & failed),
            )
        return cls(
            batch_id=snapshot.batch_id,
            roster_size=None if roster is None else len(roster),
            roster_source=snapshot.roster_source,
            steps=steps,
            batch_outcomes=dict(snapshot.batch_outcomes),
        )


def as_counts(state: "BatchSnapshot | BatchCounts") -> BatchCounts:
    return state if isinstance(state, BatchCounts) else BatchCounts.of(state)
