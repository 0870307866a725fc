"""The facts a store holds about one batch, and the one merge of a change into them.

Every store keeps facts that only grow: rosters, essay outcomes and batch outcome reports are
added, never taken back. Which of them count is decided here and nowhere else: the latest batch
outcome of a step wins (`merge_facts`), a READY roster replaces a REGISTERED one and a success
outranks a failure of the same essay (`BatchFacts.to_snapshot`). A store that can only add set
members or rows writes what `facts_added_by` gives; one that holds objects applies `apply_change`.
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


def facts_added_by(batch_id: str, changes: Iterable[BatchStateChange]) -> BatchFacts:
    """The facts that changes of one batch add, their event ids among them."""
    rosters: dict[RosterSource, set[str]] = {}
    succeeded: dict[str, set[str]] = {}
    failed: dict[str, set[str]] = {}
    reports: list[tuple[str, BatchOutcome]] = []
    event_ids: set[str] = set()
    last_event_at: datetime | None = None
    for change in changes:
        if change.batch_id != batch_id:
            raise ValueError(f"a change of batch {change.batch_id!r} among those of {batch_id!r}")
        event_ids.add(change.event_id)
        last_event_at = later(last_event_at, change.occurred_at)
        if change.roster is not None and change.roster_source is not None:
            rosters.setdefault(change.roster_source, set()).update(change.roster)
        for item in change.essay_outcomes:
            target = succeeded if item.outcome is EssayOutcome.SUCCEEDED else failed
            target.setdefault(item.step, set()).add(item.essay_id)
        if change.batch_outcome_step is not None and change.batch_outcome is not None:
            reports.append((change.batch_outcome_step, change.batch_outcome))
    return BatchFacts(
        batch_id=batch_id,
        rosters={source: frozenset(ids) for source, ids in rosters.items()},
        succeeded={step: frozenset(ids) for step, ids in succeeded.items()},
        failed={step: frozenset(ids) for step, ids in failed.items()},
        outcomes=latest_per_step(reports),
        event_ids=frozenset(event_ids),
        last_event_at=last_event_at,
    )


def merge_facts(current: BatchFacts, added: BatchFacts) -> BatchFacts:
    """The union of two sets of facts of one batch; per step the later batch outcome wins.
    Commutative, associative and idempotent, so order and repeats never change the result."""
    return BatchFacts(
        batch_id=current.batch_id,
        rosters=_union_by_key(current.rosters, added.rosters),
        succeeded=_union_by_key(current.succeeded, added.succeeded),
        failed=_union_by_key(current.failed, added.failed),
        outcomes=latest_per_step([*current.outcomes.items(), *added.outcomes.items()]),
        event_ids=current.event_ids | added.event_ids,
        last_event_at=later(current.last_event_at, added.last_event_at),
    )


def apply_change(current: BatchFacts, change: BatchStateChange) -> MergedChange:
    if change.event_id in current.event_ids:
        return MergedChange(current, is_new=False)
    added = facts_added_by(change.batch_id, [change])
    return MergedChange(merge_facts(current, added), is_new=True)


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


def _union_by_key(
    current: Mapping[K, frozenset[str]], added: Mapping[K, frozenset[str]]
) -> dict[K, frozenset[str]]:
    merged = dict(current)
    for key, ids in added.items():
        held = merged.get(key)
        merged[key] = ids if held is None else held | ids
    return merged
