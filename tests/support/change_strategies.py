"""Hypothesis strategies for batch state changes over a small world of essays and steps, so that
random sequences collide often: shared essays, repeated event ids, equal times, two rosters."""

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from batch_conductor_service.domain.batch_state import (
    BatchOutcome,
    BatchStateChange,
    EssayOutcome,
    EssayStepOutcome,
    RosterSource,
)
from common_core.enums import BatchPhaseStatus

T0 = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)
ESSAYS = ("e1", "e2")
STEPS = ("spellcheck", "nlp")

essay_ids = st.sampled_from(ESSAYS)
steps = st.sampled_from(STEPS)
# Few distinct times, so equal times (ties broken by status) come up.
times = st.integers(min_value=0, max_value=3).map(lambda m: T0 + timedelta(minutes=m))


@st.composite
def changes(
    draw: st.DrawFn, batch_id: str = "b", event_ids: st.SearchStrategy[str] | None = None
) -> BatchStateChange:
    occurred_at = draw(times)
    roster_source = draw(st.none() | st.sampled_from(RosterSource))
    roster = None if roster_source is None else draw(st.frozensets(essay_ids, max_size=len(ESSAYS)))
    outcomes = draw(
        st.lists(
            st.builds(EssayStepOutcome, essay_ids, steps, st.sampled_from(EssayOutcome)),
            max_size=4,
        )
    )
    outcome_step = draw(st.none() | steps)
    outcome = (
        None
        if outcome_step is None
        else BatchOutcome(draw(st.sampled_from(BatchPhaseStatus)), occurred_at)
    )
    ids = event_ids if event_ids is not None else st.uuids().map(str)
    return BatchStateChange(
        event_id=draw(ids),
        batch_id=batch_id,
        occurred_at=occurred_at,
        roster=roster,
        roster_source=roster_source,
        essay_outcomes=tuple(outcomes),
        batch_outcome_step=outcome_step,
        batch_outcome=outcome,
    )
