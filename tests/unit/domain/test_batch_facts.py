"""The one merge of a batch's facts: any order, any repeats, any grouping give one answer."""

import random
from datetime import UTC, datetime, timedelta
from functools import reduce

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_conductor_service.domain.batch_facts import (
    BatchFacts,
    apply_change,
    facts_added_by,
    merge_facts,
)
from batch_conductor_service.domain.batch_state import (
    BatchOutcome,
    BatchStateChange,
    EssayOutcome,
    EssayStepOutcome,
    RosterSource,
)
from common_core.enums import BatchPhaseStatus

T0 = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)
STEPS = ("spellcheck", "nlp")
ESSAYS = ("e1", "e2", "e3")


@st.composite
def changes(draw: st.DrawFn) -> BatchStateChange:
    event_id = draw(st.sampled_from([f"ev{i}" for i in range(8)]))
    at = T0 + timedelta(minutes=draw(st.integers(0, 3)))
    roster = draw(st.none() | st.frozensets(st.sampled_from(ESSAYS)))
    step = draw(st.none() | st.sampled_from(STEPS))
    return BatchStateChange(
        event_id=event_id,
        batch_id="b1",
        occurred_at=at,
        roster=roster,
        roster_source=None if roster is None else draw(st.sampled_from(list(RosterSource))),
        essay_outcomes=tuple(
            draw(
                st.lists(
                    st.builds(
                        EssayStepOutcome,
                        st.sampled_from(ESSAYS),
                        st.sampled_from(STEPS),
                        st.sampled_from(list(EssayOutcome)),
                    ),
                    max_size=3,
                )
            )
        ),
        batch_outcome_step=step,
        batch_outcome=None
        if step is None
        else BatchOutcome(draw(st.sampled_from(list(BatchPhaseStatus))), at),
    )


def _distinct_by_event(items: list[BatchStateChange]) -> list[BatchStateChange]:
    # An event id names one event: redeliveries of it carry the same facts.
    first: dict[str, BatchStateChange] = {}
    for change in items:
        first.setdefault(change.event_id, change)
    return list(first.values())


def _apply_all(items: list[BatchStateChange]) -> BatchFacts:
    return reduce(lambda facts, c: apply_change(facts, c).facts, items, BatchFacts("b1"))


@given(st.lists(changes(), max_size=6).map(_distinct_by_event), st.randoms())
def test_order_and_redelivery_do_not_change_the_facts(
    items: list[BatchStateChange], rng: random.Random
) -> None:
    shuffled = [*items, *items]
    rng.shuffle(shuffled)
    assert _apply_all(shuffled) == _apply_all(items)


@given(st.lists(changes(), max_size=6).map(_distinct_by_event), st.integers(0, 6))
def test_facts_of_many_changes_merge_like_the_changes_one_by_one(
    items: list[BatchStateChange], split: int
) -> None:
    # What a store writes for a group of changes is what applying them one by one gives.
    head = facts_added_by("b1", items[:split])
    tail = facts_added_by("b1", items[split:])
    assert merge_facts(head, tail) == _apply_all(items)
    assert merge_facts(tail, head) == _apply_all(items)


@given(changes())
def test_a_change_is_new_once(change: BatchStateChange) -> None:
    first = apply_change(BatchFacts("b1"), change)
    again = apply_change(first.facts, change)
    assert first.is_new
    assert not again.is_new
    assert again.facts == first.facts


def test_the_latest_batch_outcome_wins_and_a_success_outranks_a_failure() -> None:
    late = BatchOutcome(BatchPhaseStatus.COMPLETED_SUCCESSFULLY, T0 + timedelta(minutes=1))
    early = BatchOutcome(BatchPhaseStatus.FAILED_CRITICALLY, T0)
    facts = _apply_all(
        [
            BatchStateChange("a", "b1", T0, batch_outcome_step="nlp", batch_outcome=late),
            BatchStateChange("b", "b1", T0, batch_outcome_step="nlp", batch_outcome=early),
            BatchStateChange(
                "c", "b1", T0, essay_outcomes=(EssayStepOutcome("e1", "nlp", EssayOutcome.FAILED),)
            ),
            BatchStateChange(
                "d",
                "b1",
                T0,
                essay_outcomes=(EssayStepOutcome("e1", "nlp", EssayOutcome.SUCCEEDED),),
            ),
        ]
    )
    snapshot = facts.to_snapshot()
    assert snapshot.batch_outcomes == {"nlp": late}
    assert snapshot.succeeded == {"nlp": frozenset({"e1"})}
    assert snapshot.failed == {}


def test_a_ready_roster_replaces_the_registered_one_whatever_the_order() -> None:
    ready = BatchStateChange(
        "r", "b1", T0, roster=frozenset({"e1"}), roster_source=RosterSource.READY
    )
    registered = BatchStateChange(
        "g", "b1", T0, roster=frozenset({"e1", "e2"}), roster_source=RosterSource.REGISTERED
    )
    for order in ([ready, registered], [registered, ready]):
        snapshot = _apply_all(order).to_snapshot()
        assert (snapshot.roster, snapshot.roster_source) == (frozenset({"e1"}), RosterSource.READY)


def test_facts_of_another_batch_are_refused() -> None:
    with pytest.raises(ValueError, match="b2"):
        facts_added_by("b1", [BatchStateChange("x", "b2", T0)])
