"""The facts a store holds about one batch, and the one merge of a change into them.

Every store keeps facts that only grow: rosters, essay outcomes and batch outcome reports are
added, never taken back. Which of them count is decided here and nowhere else: the latest batch
outcome of a step wins (`merge_facts`), a READY roster replaces a REGISTERED one and a success
outranks a failure of the same essay (`BatchFacts.to_snapshot`). A store that can only add set
members or rows writes what `facts_added_by` gives; one that holds objects keeps a
`BatchFactsBuilder` per batch (`apply_change` is the same merge as a pure function).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from batch_conductor_service.domain.batch_state import (
    BatchOutcome,
    BatchSnapshot,
    BatchStateChange,
    EssayOutcome,
    RosterSource,
    choose_roster,
    later,
)

_NO_IDS: frozenset[str] = frozenset()
K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class BatchFacts:
    """Unlike a snapshot it keeps both rosters and the processed event ids, which a rebuild of
    one store from another needs; `failed` may still name essays that also succeeded."""

    batch_id: str
    rosters: Mapping[RosterSource, frozenset[str]] = field(default_factory=dict)
    succeeded: Mapping[str, frozenset[str]] = field(default_factory=dict)
    failed: Mapping[str, frozenset[str]] = field(default_factory=dict)
    outcomes: Mapping[str, BatchOutcome] = field(default_factory=dict)
    event_ids: frozenset[str] = frozenset()
    # The newest `occurred_at` of the changes merged: only moves forward, like the rest.
    last_event_at: datetime | None = None

    def to_snapshot(self) -> BatchSnapshot:
        roster, source = choose_roster(
            self.rosters.get(RosterSource.REGISTERED), self.rosters.get(RosterSource.READY)
        )
        return BatchSnapshot(
            batch_id=self.batch_id,
            roster=roster,
            roster_source=source,
            succeeded=dict(self.succeeded),
            failed={
                step: remaining
                for step, ids in self.failed.items()
                if (remaining := ids - self.succeeded.get(step, _NO_IDS))
            },
            batch_outcomes=dict(self.outcomes),
            last_event_at=self.last_event_at,
        )


@dataclass(frozen=True, slots=True)
class MergedChange:
    facts: BatchFacts
    is_new: bool  # False when the change's event id was merged before: nothing changed


class BatchFactsBuilder:
    """The one merge, done in place: facts and changes are added, `build` freezes the result.
    Only unions, except that per step the later batch outcome is kept; so the order and the
    repeats of what is added never change what is built. A store holding objects keeps one per
    batch, so adding one essay to a batch of thousands copies nothing."""

    def __init__(self, batch_id: str, start: BatchFacts | None = None) -> None:
        self.batch_id = batch_id
        self._rosters: dict[RosterSource, set[str]] = {}
        self._succeeded: dict[str, set[str]] = {}
        self._failed: dict[str, set[str]] = {}
        self._outcomes: dict[str, BatchOutcome] = {}
        self._event_ids: set[str] = set()
        self._last_event_at: datetime | None = None
        if start is not None:
            self.add_facts(start)

    def add_change(self, change: BatchStateChange) -> bool:
        """False, and nothing added, when the change's event id was added before."""
        if change.batch_id != self.batch_id:
            raise ValueError(f"a change of batch {change.batch_id!r} among {self.batch_id!r}'s")
        if change.event_id in self._event_ids:
            return False
        self._event_ids.add(change.event_id)
        self._last_event_at = later(self._last_event_at, change.occurred_at)
        if change.roster is not None and change.roster_source is not None:
            self._rosters.setdefault(change.roster_source, set()).update(change.roster)
        for item in change.essay_outcomes:
            target = self._succeeded if item.outcome is EssayOutcome.SUCCEEDED else self._failed
            target.setdefault(item.step, set()).add(item.essay_id)
        if change.batch_outcome_step is not None and change.batch_outcome is not None:
            self._keep_later(change.batch_outcome_step, change.batch_outcome)
        return True

    def add_facts(self, facts: BatchFacts) -> None:
        _add_ids(self._rosters, facts.rosters)
        _add_ids(self._succeeded, facts.succeeded)
        _add_ids(self._failed, facts.failed)
        for step, outcome in facts.outcomes.items():
            self._keep_later(step, outcome)
        self._event_ids.update(facts.event_ids)
        self._last_event_at = later(self._last_event_at, facts.last_event_at)

    def build(self, *, with_event_ids: bool = True) -> BatchFacts:
        """Without event ids for a reader that needs none (a snapshot): no copy of them."""
        return BatchFacts(
            batch_id=self.batch_id,
            rosters={source: frozenset(ids) for source, ids in self._rosters.items()},
            succeeded={step: frozenset(ids) for step, ids in self._succeeded.items()},
            failed={step: frozenset(ids) for step, ids in self._failed.items()},
            outcomes=dict(self._outcomes),
            event_ids=frozenset(self._event_ids) if with_event_ids else frozenset(),
            last_event_at=self._last_event_at,
        )

    def _keep_later(self, step: str, outcome: BatchOutcome) -> None:
        current = self._outcomes.get(step)
        if current is None or outcome.supersedes(current):
            self._outcomes[step] = outcome


def facts_added_by(batch_id: str, changes: Iterable[BatchStateChange]) -> BatchFacts:
    """The facts that changes of one batch add, their event ids among them."""
    builder = BatchFactsBuilder(batch_id)
    for change in changes:
        builder.add_change(change)
    return builder.build()


def merge_facts(current: BatchFacts, added: BatchFacts) -> BatchFacts:
    """The union of two sets of facts of one batch; per step the later batch outcome wins.
    Commutative, associative and idempotent, so order and repeats never change the result."""
    builder = BatchFactsBuilder(current.batch_id, current)
    builder.add_facts(added)
    return builder.build()


def apply_change(current: BatchFacts, change: BatchStateChange) -> MergedChange:
    builder = BatchFactsBuilder(current.batch_id, current)
    if not builder.add_change(change):
        return MergedChange(current, is_new=False)
    return MergedChange(builder.build(), is_new=True)


def group_by_step(pairs: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """(step, essay_id) pairs to essay ids per step."""
    grouped: dict[str, set[str]] = {}
    for step, essay_id in pairs:
        grouped.setdefault(step, set()).add(essay_id)
    return {step: frozenset(ids) for step, ids in grouped.items()}


def latest_per_step(reports: Iterable[tuple[str, BatchOutcome]]) -> dict[str, BatchOutcome]:
    """The batch outcome that counts for each step, out of every one reported."""
    latest: dict[str, BatchOutcome] = {}
    for step, outcome in reports:
        current = latest.get(step)
        if current is None or outcome.supersedes(current):
            latest[step] = outcome
    return latest


def _add_ids(target: dict[K, set[str]], added: Mapping[K, frozenset[str]]) -> None:
    for key, ids in added.items():
        target.setdefault(key, set()).update(ids)
