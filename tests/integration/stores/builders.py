"""Changes and snapshot views shared by the store tests."""

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from batch_conductor_service.domain.batch_state import (
    BatchOutcome,
    BatchSnapshot,
    BatchStateChange,
    EssayOutcome,
    EssayStepOutcome,
    RosterSource,
)
from common_core.enums import BatchPhaseStatus

T0 = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def event_id() -> str:
    return f"event-{next(_ids)}"


def essays(
    batch_id: str, step: str, outcome: EssayOutcome, *essay_ids: str, eid: str | None = None
) -> BatchStateChange:
    return BatchStateChange(
        event_id=eid or event_id(),
        batch_id=batch_id,
        occurred_at=T0,
        essay_outcomes=tuple(EssayStepOutcome(e, step, outcome) for e in essay_ids),
    )


def roster(batch_id: str, source: RosterSource, *essay_ids: str) -> BatchStateChange:
    return BatchStateChange(
        event_id=event_id(),
        batch_id=batch_id,
        occurred_at=T0,
        roster=frozenset(essay_ids),
        roster_source=source,
    )


def outcome(batch_id: str, step: str, status: BatchPhaseStatus, minutes: int) -> BatchStateChange:
    at = T0 + timedelta(minutes=minutes)
    return BatchStateChange(
        event_id=event_id(),
        batch_id=batch_id,
        occurred_at=at,
        batch_outcome_step=step,
        batch_outcome=BatchOutcome(status, at),
    )


def view(snapshot: BatchSnapshot) -> dict[str, Any]:
    """A snapshot with empty per-step sets left out, so stores compare by meaning."""
    return {
        "roster": None if snapshot.roster is None else sorted(snapshot.roster),
        "roster_source": snapshot.roster_source,
        "succeeded": {s: sorted(ids) for s, ids in snapshot.succeeded.items() if ids},
        "failed": {s: sorted(ids) for s, ids in snapshot.failed.items() if ids},
        "outcomes": dict(snapshot.batch_outcomes),
    }


ChangeBuilder = Callable[[str], BatchStateChange]


def change_builders(
    essay_pool: list[str], steps: list[str], max_essays: int
) -> st.SearchStrategy[ChangeBuilder]:
    """Random changes over a small world, each a builder taking the batch id: a roster of either
    source, essays' outcomes of one step, or a batch outcome at one of a few times (so ties
    come up)."""
    essay_ids = st.lists(st.sampled_from(essay_pool), max_size=max_essays, unique=True)
    return st.one_of(
        st.builds(
            lambda source, ids: lambda b: roster(b, source, *ids),
            st.sampled_from(list(RosterSource)),
            essay_ids,
        ),
        st.builds(
            lambda step, result, ids: lambda b: essays(b, step, result, *ids),
            st.sampled_from(steps),
            st.sampled_from(list(EssayOutcome)),
            essay_ids.filter(bool),
        ),
        st.builds(
            lambda step, status, minute: lambda b: outcome(b, step, status, minute),
            st.sampled_from(steps),
            st.sampled_from(list(BatchPhaseStatus)),
            st.integers(0, 3),
        ),
    )
