"""Gives every essay result that named no batch the batches whose rosters name its essay.

Runs before a fetch's changes are stored. A roster and a result may race (same fetch, other
partitions, other replicas): the roster side indexes its essays and then reads the kept
results, the result side keeps itself and then reads the index, so whichever writes second
sees the other. Both may see each other; the store then counts the second application of the
same event in the same batch as a duplicate.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from batch_conductor_service.domain.batch_state import BatchStateChange
from batch_conductor_service.domain.placement import UnplacedResult, drained, placements
from batch_conductor_service.protocols import EssayPlacementProtocol


@dataclass
class Placed:
    """The changes placement adds to a fetch, and the results still waiting for a roster."""

    on_arrival: list[BatchStateChange] = field(default_factory=list)
    by_roster: list[BatchStateChange] = field(default_factory=list)
    parked: list[UnplacedResult] = field(default_factory=list)

    @property
    def changes(self) -> list[BatchStateChange]:
        """Each (batch, event) once; built on every call, so callers keep the list."""
        seen: set[tuple[str, str]] = set()
        unique: list[BatchStateChange] = []
        for change in self.on_arrival + self.by_roster:
            key = (change.batch_id, change.event_id)
            if key not in seen:
                seen.add(key)
                unique.append(change)
        return unique


class ResultPlacer:
    def __init__(self, placement: EssayPlacementProtocol) -> None:
        self._placement = placement

    async def place(
        self, changes: Sequence[BatchStateChange], unplaced: Sequence[UnplacedResult]
    ) -> Placed:
        rosters: dict[str, set[str]] = {}
        for change in changes:
            if change.roster is not None:
                rosters.setdefault(change.batch_id, set()).update(change.roster)
        placed = Placed()
        if rosters:
            # Indexed before anything is read: a result of this very fetch finds its batch.
            await self._placement.index_rosters(rosters)
        if unplaced:
            await self._placement.keep(unplaced)
            batches = await self._placement.batches_of({r.essay_id for r in unplaced})
            placed.on_arrival = placements(unplaced, batches)
            placed.parked = [r for r in unplaced if r.essay_id not in batches]
        if rosters:
            essays = set().union(*rosters.values())
            kept = await self._placement.kept_for(essays)
            placed.by_roster = drained(
                {batch_id: frozenset(ids) for batch_id, ids in rosters.items()}, kept
            )
        return placed
