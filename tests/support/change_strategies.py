"""Hypothesis strategies for batch changes over a small world of essays and steps, so that random
sequences collide often: shared essays, repeated event ids, equal times, both rosters, reports
without an id."""

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from batch_conductor_service.domain.batch_state import (
    BatchChange,
    EssayResult,
    RosterSource,
    StepOutcome,
)
from batch_conductor_service.stores.redis.layout import SEPARATOR
from common_core.enums import BatchPhaseStatus

T0 = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)
ESSAYS = ("e1", "e2")
STEPS = ("spellcheck", "nlp")

essay_ids = st.sampled_from(ESSAYS)
steps = st.sampled_from(STEPS)
# A fact's name as Redis holds it, with anything the edge lets through (no control character but
# the step/essay separator, which every essay result's name holds).
fact_names = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")) | st.just(SEPARATOR), min_size=1, max_size=40
)
# Few distinct times, so equal times (ties broken by status) come up.
times = st.integers(min_value=0, max_value=3).map(lambda m: T0 + timedelta(minutes=m))


@st.composite
def changes(
    draw: st.DrawFn, batch_id: str = "b", event_ids: st.SearchStrategy[str] | None = None
) -> BatchChange:
    occurred_at = draw(times)
    roster_source = draw(st.none() | st.sampled_from(RosterSource))
    roster = None if roster_source is None else draw(st.frozensets(essay_ids, max_size=len(ESSAYS)))
    essays = draw(st.lists(st.builds(EssayResult, essay_ids, steps, st.booleans()), max_size=4))
    outcome_step = draw(st.none() | steps)
    outcome = (
        None
        if outcome_step is None
        else StepOutcome(draw(st.sampled_from(BatchPhaseStatus)), draw(times))
    )
    ids = event_ids if event_ids is not None else st.uuids().map(str)
    # A report over HTTP has no event id.
    event_id = draw(st.none() | ids) if outcome_step is not None else draw(ids)
    return BatchChange(
        batch_id=batch_id,
        occurred_at=occurred_at,
        event_id=event_id,
        roster=roster,
        roster_source=roster_source,
        essays=tuple(essays),
        outcome_step=outcome_step,
        outcome=outcome,
    )
