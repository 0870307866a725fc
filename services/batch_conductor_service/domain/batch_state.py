"""What BCS knows of one batch, the changes events make to it, and the rules that decide which
of them count (docs/design.md, "Batch state"). Pure: no I/O.

Every store keeps the same facts: the rosters, each essay's reported results per step, and per
step and status the latest time a batch-level outcome was reported. Rosters and essay results
only grow; an outcome is one of at most three per step. `merge` decides what a list of changes
adds (one rule for every store), `count` turns a batch's facts into what /define needs, and
`step_completion` says whether a step is complete.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from common_core.enums import BatchPhaseStatus

FINISHING_STATUSES = frozenset(
    {BatchPhaseStatus.COMPLETED_SUCCESSFULLY, BatchPhaseStatus.COMPLETED_WITH_FAILURES}
)


class RosterSource(StrEnum):
    """Where a roster came from; a READY roster replaces a REGISTERED one, whatever the order."""

    REGISTERED = "registered"
    READY = "ready"


class ApplyResult(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """A batch-level outcome of one step. `at` is the time it counts at: the earlier of its
    producer's stamp and the moment BCS received it, so no producer can push it ahead."""

    status: BatchPhaseStatus
    at: datetime

    @property
    def finishes(self) -> bool:
        return self.status in FINISHING_STATUSES

    def supersedes(self, other: "StepOutcome") -> bool:
        # Ties on time are broken by status, so the result never depends on arrival order.
        return (self.at, self.status.value) > (other.at, other.status.value)


# One or more per consumed event: NamedTuples, immutable as frozen dataclasses are, are built in
# half their time (a frozen dataclass sets each field through object.__setattr__).
class EssayResult(NamedTuple):
    """One essay's terminal result of one step; a success outranks any failure."""

    essay_id: str
    step: str
    succeeded: bool


class _ChangeFields(NamedTuple):
    batch_id: str
    occurred_at: datetime
    event_id: str | None
    roster: frozenset[str] | None
    roster_source: RosterSource | None
    essays: tuple[EssayResult, ...]
    outcome_step: str | None
    outcome: StepOutcome | None


class BatchChange(_ChangeFields):
    """Everything one event (or one report over HTTP) says about one batch.

    `event_id` makes applying an event idempotent; a report over HTTP has none: repeating it
    is a no-op by the repeat rule alone (`merge`)."""

    __slots__ = ()

    def __new__(
        cls,
        batch_id: str,
        occurred_at: datetime,
        event_id: str | None = None,
        roster: frozenset[str] | None = None,
        roster_source: RosterSource | None = None,
        essays: tuple[EssayResult, ...] = (),
        outcome_step: str | None = None,
        outcome: StepOutcome | None = None,
    ) -> "BatchChange":
        if (roster is None) != (roster_source is None):
            raise ValueError("roster and roster_source go together")
        if (outcome_step is None) != (outcome is None):
            raise ValueError("outcome_step and outcome go together")
        return tuple.__new__(
            cls,
            (batch_id, occurred_at, event_id, roster, roster_source, essays, outcome_step, outcome),
        )


@dataclass(frozen=True, slots=True)
class ParkedResult:
    """An essay's result from an event that named no batch, waiting for a roster to place it."""

    event_id: str
    essay_id: str
    step: str
    succeeded: bool
    occurred_at: datetime

    def placed_in(self, batch_id: str) -> BatchChange:
        result = EssayResult(self.essay_id, self.step, self.succeeded)
        return BatchChange(batch_id, self.occurred_at, self.event_id, essays=(result,))


OutcomeKey = tuple[str, BatchPhaseStatus]


@dataclass
class BatchFacts:
    """The facts a store holds of one batch (or adds to it). `outcomes` keeps, per step and
    status, the latest time reported; `failed` may name essays that also succeeded."""

    batch_id: str
    rosters: dict[RosterSource, set[str]] = field(default_factory=dict)
    succeeded: dict[str, set[str]] = field(default_factory=dict)
    failed: dict[str, set[str]] = field(default_factory=dict)
    outcomes: dict[OutcomeKey, datetime] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)
    last_event_at: datetime | None = None

    def latest_outcomes(self) -> dict[str, StepOutcome]:
        return latest_outcomes(self.outcomes.items())

    def add(self, other: "BatchFacts") -> None:
        """The union of two sets of facts; per step and status the later time is kept."""
        for source, ids in other.rosters.items():
            self.rosters.setdefault(source, set()).update(ids)
        for mine, theirs in ((self.succeeded, other.succeeded), (self.failed, other.failed)):
            for step, ids in theirs.items():
                mine.setdefault(step, set()).update(ids)
        for key, at in other.outcomes.items():
            if key not in self.outcomes or at > self.outcomes[key]:
                self.outcomes[key] = at
        self.event_ids.update(other.event_ids)
        self.last_event_at = later(self.last_event_at, other.last_event_at)


def latest_outcomes(reported: Iterable[tuple[OutcomeKey, datetime]]) -> dict[str, StepOutcome]:
    """The batch-level outcome that counts for each step, out of the latest time per status."""
    latest: dict[str, StepOutcome] = {}
    for (step, status), at in reported:
        outcome = StepOutcome(status, at)
        current = latest.get(step)
        if current is None or outcome.supersedes(current):
            latest[step] = outcome
    return latest


def later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if current is None or (candidate is not None and candidate > current):
        return candidate
    return current


@dataclass
class Merge:
    """What a list of changes adds to the stores' facts, and each change's result."""

    results: list[ApplyResult]
    added: dict[str, BatchFacts]


def merge(
    changes: Sequence[BatchChange],
    known_ids: Mapping[str, Iterable[str]],
    latest: Mapping[str, Mapping[str, StepOutcome]],
) -> Merge:
    """The one rule of every store, applied to changes in order. `known_ids` are the event ids
    each batch already holds, `latest` its current latest outcome per step.

    A change whose event id is known (or came earlier in the list) is a duplicate and adds
    nothing. Any other change adds its id, roster and essay results; its batch-level outcome
    too, unless it repeats the step's current latest status: a repeat changes nothing, so a
    report (which has no id) sent again and again stores nothing. An event's id is kept even
    when its outcome was a repeat, so that its redelivery stays a duplicate whatever came
    between."""
    seen = {batch_id: set(ids) for batch_id, ids in known_ids.items()}
    current = {batch_id: dict(outcomes) for batch_id, outcomes in latest.items()}
    added: dict[str, BatchFacts] = {}
    results: list[ApplyResult] = []
    for change in changes:
        ids = seen.setdefault(change.batch_id, set())
        if change.event_id is not None and change.event_id in ids:
            results.append(ApplyResult.DUPLICATE)
            continue
        steps = current.setdefault(change.batch_id, {})
        outcome = change.outcome
        if outcome is not None and change.outcome_step is not None:
            now_latest = steps.get(change.outcome_step)
            if now_latest is not None and now_latest.status is outcome.status:
                outcome = None  # a repeat
            elif now_latest is None or outcome.supersedes(now_latest):
                steps[change.outcome_step] = outcome
        if (
            change.event_id is None
            and outcome is None
            and not change.essays
            and change.roster is None
        ):
            # A report without an id that repeats the latest outcome: nothing to store at all.
            results.append(ApplyResult.DUPLICATE)
            continue
        results.append(ApplyResult.APPLIED)
        facts = added.setdefault(change.batch_id, BatchFacts(change.batch_id))
        if change.event_id is not None:
            ids.add(change.event_id)
            facts.event_ids.add(change.event_id)
        facts.last_event_at = later(facts.last_event_at, change.occurred_at)
        if change.roster is not None and change.roster_source is not None:
            facts.rosters.setdefault(change.roster_source, set()).update(change.roster)
        for essay in change.essays:
            target = facts.succeeded if essay.succeeded else facts.failed
            target.setdefault(essay.step, set()).add(essay.essay_id)
        if outcome is not None and change.outcome_step is not None:
            key = (change.outcome_step, outcome.status)
            if key not in facts.outcomes or outcome.at > facts.outcomes[key]:
                facts.outcomes[key] = outcome.at
    return Merge(results, added)


@dataclass(frozen=True, slots=True)
class RecordedBatch:
    """What a durable record stored of one batch in one call: the batch's version before and
    after it (bumped by every change), and the facts it added. A cache that holds the version
    before can take the facts; one that holds another has missed a change."""

    previous_version: int
    version: int
    added: BatchFacts


@dataclass(frozen=True, slots=True)
class StepCounts:
    """Essays with a result for one step; one that succeeded counts as succeeded only."""

    succeeded: int = 0
    failed: int = 0
    roster_succeeded: int = 0
    roster_failed: int = 0


NO_COUNTS = StepCounts()


@dataclass(frozen=True, slots=True)
class BatchCounts:
    """What /define needs of a batch: how many essays, not which. A store can count these
    where its facts live, so an answer costs the same for 30 essays or 10,000."""

    batch_id: str
    roster_size: int | None = None
    roster_source: RosterSource | None = None
    steps: Mapping[str, StepCounts] = field(default_factory=dict)
    latest: Mapping[str, StepOutcome] = field(default_factory=dict)
    last_event_at: datetime | None = None

    @property
    def is_empty(self) -> bool:
        return (
            self.roster_size is None
            and not self.steps
            and not self.latest
            and self.last_event_at is None
        )

    def counts_for(self, step: str) -> StepCounts:
        return self.steps.get(step, NO_COUNTS)


def chosen_roster(
    rosters: Mapping[RosterSource, Iterable[str]],
) -> tuple[RosterSource | None, set[str] | None]:
    for source in (RosterSource.READY, RosterSource.REGISTERED):
        if source in rosters:
            return source, set(rosters[source])
    return None, None


def count(facts: BatchFacts) -> BatchCounts:
    """The counting rule; the Redis count script (stores/redis/layout.py) is its one copy."""
    source, roster = chosen_roster(facts.rosters)
    steps: dict[str, StepCounts] = {}
    for step in {*facts.succeeded, *facts.failed}:
        succeeded = facts.succeeded.get(step, set())
        failed = facts.failed.get(step, set()) - succeeded
        steps[step] = StepCounts(
            succeeded=len(succeeded),
            failed=len(failed),
            roster_succeeded=0 if roster is None else len(roster & succeeded),
            roster_failed=0 if roster is None else len(roster & failed),
        )
    return BatchCounts(
        batch_id=facts.batch_id,
        roster_size=None if roster is None else len(roster),
        roster_source=source,
        steps=steps,
        latest=facts.latest_outcomes(),
        last_event_at=facts.last_event_at,
    )


@dataclass(frozen=True, slots=True)
class StepCompletion:
    complete: bool
    reason: str
    # False when the batch holds nothing about the step: nothing worth telling beyond "no".
    has_evidence: bool = True


def step_completion(step: str, counts: BatchCounts) -> StepCompletion:
    """Design rule 3: a step is complete only when the batch's state proves it. Its latest
    batch-level outcome decides when there is one; otherwise the roster must be known and every
    essay on it have a terminal result for the step, at least one of them a success."""
    outcome = counts.latest.get(step)
    if outcome is not None:
        if outcome.finishes:
            return StepCompletion(True, f"batch-level outcome {outcome.status.value}")
        return StepCompletion(False, f"latest batch-level outcome is {outcome.status.value}")
    essays, roster_size = counts.counts_for(step), counts.roster_size
    if roster_size is None:
        if with_results := essays.succeeded + essays.failed:
            return StepCompletion(
                False, f"{with_results} essays have outcomes but the roster is unknown"
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
