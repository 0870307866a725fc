"""What BCS knows about one batch, and the changes events make to it.

Pure data: repositories store it, handlers produce changes, the resolver reads snapshots.
Every change is a union of facts that only move forward, so applying the same change
twice, or two changes in either order, ends in the same state.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from common_core.enums import BatchPhaseStatus


class EssayOutcome(StrEnum):
    """Terminal outcome of one step for one essay; SUCCEEDED outranks FAILED."""

    FAILED = "failed"
    SUCCEEDED = "succeeded"


class RosterSource(StrEnum):
    """Where a roster came from; a READY roster replaces a REGISTERED one, whatever the order."""

    REGISTERED = "registered"
    READY = "ready"


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """Latest batch-level outcome of one step; later `occurred_at` wins."""

    status: BatchPhaseStatus
    occurred_at: datetime

    def supersedes(self, other: "BatchOutcome") -> bool:
        # Ties on time are broken by status so the result never depends on arrival order.
        return (self.occurred_at, self.status.value) > (other.occurred_at, other.status.value)


@dataclass(frozen=True, slots=True)
class EssayStepOutcome:
    essay_id: str
    step: str
    outcome: EssayOutcome


@dataclass(frozen=True, slots=True)
class BatchStateChange:
    """Everything one event says about one batch. `event_id` makes applying it idempotent."""

    event_id: str
    batch_id: str
    occurred_at: datetime
    roster: frozenset[str] | None = None
    roster_source: RosterSource | None = None
    essay_outcomes: tuple[EssayStepOutcome, ...] = ()
    batch_outcome_step: str | None = None
    batch_outcome: BatchOutcome | None = None

    def __post_init__(self) -> None:
        if (self.roster is None) != (self.roster_source is None):
            raise ValueError("roster and roster_source go together")
        if (self.batch_outcome_step is None) != (self.batch_outcome is None):
            raise ValueError("batch_outcome_step and batch_outcome go together")


class ApplyResult(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class BatchSnapshot:
    """Read model of one batch. `failed` never contains an essay that is also in `succeeded`."""

    batch_id: str
    roster: frozenset[str] | None = None
    roster_source: RosterSource | None = None
    succeeded: Mapping[str, frozenset[str]] = field(default_factory=dict)
    failed: Mapping[str, frozenset[str]] = field(default_factory=dict)
    batch_outcomes: Mapping[str, BatchOutcome] = field(default_factory=dict)
    # The newest `occurred_at` of the events applied to the batch; None before any, or for
    # state stored before BCS recorded it.
    last_event_at: datetime | None = None

    @classmethod
    def empty(cls, batch_id: str) -> "BatchSnapshot":
        return cls(batch_id=batch_id)

    @property
    def is_empty(self) -> bool:
        return (
            self.roster is None
            and not any(self.succeeded.values())
            and not any(self.failed.values())
            and not self.batch_outcomes
            and self.last_event_at is None
        )

    def succeeded_for(self, step: str) -> frozenset[str]:
        return self.succeeded.get(step, frozenset())

    def failed_for(self, step: str) -> frozenset[str]:
        return self.failed.get(step, frozenset())


def choose_roster(
    registered: frozenset[str] | None, ready: frozenset[str] | None
) -> tuple[frozenset[str] | None, RosterSource | None]:
    if ready is not None:
        return ready, RosterSource.READY
    if registered is not None:
        return registered, RosterSource.REGISTERED
    return None, None


def later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    """The newer of two event times; how every store keeps a batch's last event time."""
    if current is None or (candidate is not None and candidate > current):
        return candidate
    return current
