"""The full stored facts of one batch, as a store holds them, and the snapshot they read as."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from batch_conductor_service.domain.batch_state import (
    BatchOutcome,
    BatchSnapshot,
    RosterSource,
    choose_roster,
    latest_outcome,
)


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """Unlike a snapshot it keeps both rosters and the processed event ids, which a rebuild of
    one store from another needs; `failed` may still name essays that also succeeded."""

    batch_id: str
    rosters: Mapping[RosterSource, frozenset[str]] = field(default_factory=dict)
    succeeded: Mapping[str, frozenset[str]] = field(default_factory=dict)
    failed: Mapping[str, frozenset[str]] = field(default_factory=dict)
    outcomes: Mapping[str, BatchOutcome] = field(default_factory=dict)
    event_ids: frozenset[str] = frozenset()

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
                if (remaining := ids - self.succeeded.get(step, frozenset()))
            },
            batch_outcomes=dict(self.outcomes),
        )


def group_by_step(pairs: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """(step, essay_id) pairs to essay ids per step."""
    grouped: dict[str, set[str]] = {}
    for step, essay_id in pairs:
        grouped.setdefault(step, set()).add(essay_id)
    return {step: frozenset(ids) for step, ids in grouped.items()}


def latest_per_step(pairs: Iterable[tuple[str, BatchOutcome]]) -> dict[str, BatchOutcome]:
    grouped: dict[str, list[BatchOutcome]] = {}
    for step, outcome in pairs:
        grouped.setdefault(step, []).append(outcome)
    latest: dict[str, BatchOutcome] = {}
    for step, outcomes in grouped.items():
        chosen = latest_outcome(outcomes)
        if chosen is not None:
            latest[step] = chosen
    return latest
