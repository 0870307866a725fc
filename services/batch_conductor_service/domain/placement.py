"""Essay results that name no batch, and the batches the rosters place them in. Pure data.

The platform's real spell checker never says which batch an essay belongs to; only the roster
events (registered, ready) do. Such a result belongs to every batch whose roster names its
essay: it is kept, keyed by essay, and applied to each such batch whichever of result and roster
arrives first. Applying is idempotent by the result's event id in each batch, so a result placed
twice (by its own arrival and by a roster's) counts once.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from batch_conductor_service.domain.batch_state import (
    BatchStateChange,
    EssayOutcome,
    EssayStepOutcome,
)


@dataclass(frozen=True, slots=True)
class UnplacedResult:
    """One essay's terminal result of one step, from an event that named no batch."""

    event_id: str
    essay_id: str
    step: str
    outcome: EssayOutcome
    occurred_at: datetime

    def placed_in(self, batch_id: str) -> BatchStateChange:
        return BatchStateChange(
            event_id=self.event_id,
            batch_id=batch_id,
            occurred_at=self.occurred_at,
            essay_outcomes=(EssayStepOutcome(self.essay_id, self.step, self.outcome),),
        )


def placements(
    results: Iterable[UnplacedResult], batches_of: Mapping[str, Iterable[str]]
) -> list[BatchStateChange]:
    """Each result applied to each batch its essay is indexed under, each pair once."""
    changes: dict[tuple[str, str], BatchStateChange] = {}
    for result in results:
        for batch_id in sorted(batches_of.get(result.essay_id, ())):
            changes.setdefault((batch_id, result.event_id), result.placed_in(batch_id))
    return list(changes.values())


def drained(
    rosters: Mapping[str, frozenset[str]], parked: Mapping[str, Iterable[UnplacedResult]]
) -> list[BatchStateChange]:
    """The kept results a roster write makes placeable: each essay's, into each batch naming it."""
    changes: dict[tuple[str, str], BatchStateChange] = {}
    for batch_id in sorted(rosters):
        for essay_id in sorted(rosters[batch_id]):
            for result in parked.get(essay_id, ()):
                changes.setdefault((batch_id, result.event_id), result.placed_in(batch_id))
    return list(changes.values())
