"""Changes and the comparable view of a batch shared by the store tests."""

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from batch_conductor_service.domain.batch_state import (
    BatchChange,
    BatchCounts,
    EssayResult,
    RosterSource,
    StepOutcome,
)
from common_core.enums import BatchPhaseStatus

T0 = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def event_id() -> str:
    return f"event-{next(_ids)}"


def essays(
    batch_id: str, step: str, succeeded: bool, *essay_ids: str, eid: str | None = None
) -> BatchChange:
    results = tuple(EssayResult(e, step, succeeded) for e in essay_ids)
    return BatchChange(batch_id, T0, eid or event_id(), essays=results)


def roster(batch_id: str, source: RosterSource, *essay_ids: str) -> BatchChange:
    return BatchChange(batch_id, T0, event_id(), roster=frozenset(essay_ids), roster_source=source)


def outcome(
    batch_id: str, step: str, status: BatchPhaseStatus, minutes: int, *, with_id: bool = True
) -> BatchChange:
    at = T0 + timedelta(minutes=minutes)
    return BatchChange(
        batch_id,
        at,
        event_id() if with_id else None,
        outcome_step=step,
        outcome=StepOutcome(status, at),
    )


def view(counts: BatchCounts) -> dict[str, Any]:
    """Counts with steps of no essays left out, so stores compare by meaning."""
    return {
        "roster": (counts.roster_size, counts.roster_source),
        "steps": {s: c for s, c in counts.steps.items() if c.succeeded or c.failed},
        "latest": dict(counts.latest),
        "last_event_at": counts.last_event_at,
    }


ChangeBuilder = Callable[[str], BatchChange]


def change_builders(
    essay_pool: list[str], steps: list[str], max_essays: int
) -> st.SearchStrategy[ChangeBuilder]:
    """Random changes over a small world, each a builder taking the batch id: a roster of either
    source, essays' results of one step, or a batch outcome at one of a few times (so ties come
    up), with an event id or, as a report over HTTP, without."""
    essay_ids = st.lists(st.sampled_from(essay_pool), max_size=max_essays, unique=True)
    return st.one_of(
        st.builds(
            lambda source, ids: lambda b: roster(b, source, *ids),
            st.sampled_from(list(RosterSource)),
            essay_ids,
        ),
        st.builds(
            lambda step, succeeded, ids: lambda b: essays(b, step, succeeded, *ids),
            st.sampled_from(steps),
            st.booleans(),
            essay_ids.filter(bool),
        ),
        st.builds(
            lambda step, status, minute, with_id: (
                lambda b: outcome(b, step, status, minute, with_id=with_id)
            ),
            st.sampled_from(steps),
            st.sampled_from(list(BatchPhaseStatus)),
            st.integers(0, 3),
            st.booleans(),
        ),
    )
