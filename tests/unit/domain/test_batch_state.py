"""The one merge of every store, the counting rule and the completion rule, on plain data."""

import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchChange,
    BatchCounts,
    BatchFacts,
    EssayResult,
    RosterSource,
    StepCounts,
    StepOutcome,
    count,
    merge,
    step_completion,
)
from batch_conductor_service.domain.pipelines_file import parse_pipelines
from batch_conductor_service.domain.step_graph import PipelineConfigError
from common_core.enums import BatchPhaseStatus
from tests.support.change_strategies import T0, changes

DONE = BatchPhaseStatus.COMPLETED_SUCCESSFULLY
FAILED = BatchPhaseStatus.FAILED_CRITICALLY
change_lists = st.lists(
    changes(event_ids=st.sampled_from([f"ev{i}" for i in range(6)])), max_size=8
)


def _distinct_by_event(items: list[BatchChange]) -> list[BatchChange]:
    # An event id names one event: its redeliveries carry the same facts.
    first: dict[str, BatchChange] = {}
    kept = []
    for change in items:
        if change.event_id is None or first.setdefault(change.event_id, change) is change:
            kept.append(change)
    return kept


def apply(facts: BatchFacts, items: list[BatchChange]) -> list[ApplyResult]:
    """What a store does: merge against what it holds, then add what the merge says."""
    merged = merge(items, {"b": facts.event_ids}, {"b": facts.latest_outcomes()})
    for added in merged.added.values():
        facts.add(added)
    return merged.results


def one_by_one(items: list[BatchChange]) -> BatchFacts:
    facts = BatchFacts("b")
    for change in items:
        apply(facts, [change])
    return facts


@given(change_lists.map(_distinct_by_event))
def test_applying_many_at_once_ends_where_applying_them_one_by_one_does(
    items: list[BatchChange],
) -> None:
    facts = BatchFacts("b")
    results = apply(facts, items)
    assert facts == one_by_one(items)
    again = BatchFacts("b")
    assert results == [apply(again, [c])[0] for c in items]


@given(change_lists.map(_distinct_by_event), st.randoms())
def test_redelivery_changes_nothing(items: list[BatchChange], rng: random.Random) -> None:
    facts = one_by_one(items)
    before = BatchFacts("b")
    before.add(facts)
    redelivered = [c for c in items if c.event_id is not None]
    rng.shuffle(redelivered)
    assert set(apply(facts, redelivered)) <= {ApplyResult.DUPLICATE}
    assert facts == before


@given(change_lists.map(_distinct_by_event), st.randoms())
def test_rosters_and_essay_results_do_not_depend_on_arrival_order(
    items: list[BatchChange], rng: random.Random
) -> None:
    shuffled = list(items)
    rng.shuffle(shuffled)
    a, b = one_by_one(items), one_by_one(shuffled)
    assert (a.rosters, a.succeeded, a.failed, a.event_ids) == (
        b.rosters,
        b.succeeded,
        b.failed,
        b.event_ids,
    )


def report(status: BatchPhaseStatus, minutes: int) -> BatchChange:
    at = T0 + timedelta(minutes=minutes)
    return BatchChange("b", at, outcome_step="nlp", outcome=StepOutcome(status, at))


def test_a_later_report_wins_and_true_false_true_ends_complete() -> None:
    facts = one_by_one([report(DONE, 0), report(FAILED, 1), report(DONE, 2)])
    assert step_completion("nlp", count(facts)).complete


def test_twenty_thousand_identical_reports_leave_what_one_left() -> None:
    once = one_by_one([report(DONE, 0)])
    facts = one_by_one([report(DONE, 0)])
    results = apply(facts, [report(DONE, minute) for minute in range(1, 20_001)])
    assert facts == once
    assert set(results) == {ApplyResult.DUPLICATE}


def test_outcomes_kept_are_at_most_one_per_step_and_status() -> None:
    statuses = list(BatchPhaseStatus)
    facts = one_by_one([report(statuses[m % 3], m) for m in range(300)])
    assert len(facts.outcomes) == len(statuses)
    assert facts.latest_outcomes()["nlp"] == StepOutcome(
        statuses[299 % 3], T0 + timedelta(minutes=299)
    )


def test_an_event_whose_outcome_repeats_still_keeps_its_id_for_its_redelivery() -> None:
    at = T0 + timedelta(minutes=1)
    repeat = BatchChange("b", at, "ev-2", outcome_step="nlp", outcome=StepOutcome(DONE, at))
    facts = one_by_one([report(DONE, 0), repeat, report(FAILED, 2)])
    # Redelivered after a failure arrived: still the old repeat, not a fresh success.
    assert apply(facts, [repeat]) == [ApplyResult.DUPLICATE]
    assert facts.latest_outcomes()["nlp"].status is FAILED


def test_outcomes_at_the_same_time_are_ordered_by_status_whatever_the_order() -> None:
    for first, second in ((DONE, FAILED), (FAILED, DONE)):
        facts = one_by_one([report(first, 0), report(second, 0)])
        assert facts.latest_outcomes()["nlp"].status is FAILED  # "FAILED..." sorts after


def test_a_success_outranks_a_failure_of_the_same_essay_in_either_order() -> None:
    failed = BatchChange("b", T0, "f", essays=(EssayResult("e1", "nlp", False),))
    succeeded = BatchChange("b", T0, "s", essays=(EssayResult("e1", "nlp", True),))
    for order in ([failed, succeeded], [succeeded, failed]):
        assert count(one_by_one(order)).counts_for("nlp") == StepCounts(succeeded=1)


def test_a_ready_roster_replaces_the_registered_one_whatever_the_order() -> None:
    ready = BatchChange("b", T0, "r", roster=frozenset({"e1"}), roster_source=RosterSource.READY)
    registered = BatchChange(
        "b", T0, "g", roster=frozenset({"e1", "e2"}), roster_source=RosterSource.REGISTERED
    )
    for order in ([ready, registered], [registered, ready]):
        counts = count(one_by_one(order))
        assert (counts.roster_size, counts.roster_source) == (1, RosterSource.READY)


essay_sets = st.frozensets(st.sampled_from(("e1", "e2", "e3", "e4")))


@st.composite
def facts_of_sets(draw: st.DrawFn) -> BatchFacts:
    roster = draw(st.none() | essay_sets)
    facts = BatchFacts("b", last_event_at=T0)
    if roster is not None:
        facts.rosters[draw(st.sampled_from(list(RosterSource)))] = set(roster)
    for step in ("spellcheck", "nlp"):
        facts.succeeded[step] = set(draw(essay_sets))
        facts.failed[step] = set(draw(essay_sets))
    return facts


def complete_by_sets(step: str, facts: BatchFacts) -> bool:
    """Design rule 3 written with the essay sets themselves."""
    _, roster = next(iter(facts.rosters.items()), (None, set()))
    if not roster:
        return False
    done_ok = roster & facts.succeeded[step]
    done_failed = (roster & facts.failed[step]) - done_ok
    return len(done_ok) + len(done_failed) == len(roster) and bool(done_ok)


@given(facts_of_sets())
def test_counts_complete_a_step_exactly_when_the_essay_sets_do(facts: BatchFacts) -> None:
    counts = count(facts)
    for step in ("spellcheck", "nlp"):
        assert step_completion(step, counts).complete == complete_by_sets(step, facts)
    assert not step_completion("cj_assessment", counts).complete


def test_one_essay_of_thirty_does_not_complete_the_batch() -> None:
    roster = frozenset(f"e{i}" for i in range(30))
    facts = one_by_one(
        [
            BatchChange("b", T0, "r", roster=roster, roster_source=RosterSource.READY),
            BatchChange("b", T0, "s", essays=(EssayResult("e0", "spellcheck", True),)),
        ]
    )
    completion = step_completion("spellcheck", count(facts))
    assert not completion.complete
    assert completion.reason == "1 of 30 essays finished"


@pytest.mark.parametrize(
    ("status", "complete"),
    [(DONE, True), (BatchPhaseStatus.COMPLETED_WITH_FAILURES, True), (FAILED, False)],
)
def test_the_latest_batch_outcome_decides(status: BatchPhaseStatus, complete: bool) -> None:
    counts = BatchCounts("b", latest={"cj_assessment": StepOutcome(status, T0)})
    assert step_completion("cj_assessment", counts).complete is complete


def test_a_batch_with_nothing_about_the_step_has_no_evidence_to_report() -> None:
    completion = step_completion("spellcheck", BatchCounts("b"))
    assert not completion.complete
    assert not completion.has_evidence


def test_a_graph_lacking_a_step_that_events_report_is_refused_by_name() -> None:
    graph = parse_pipelines("pipelines:\n  p:\n    steps:\n      - {name: nlp}\n")
    graph.require_steps({"nlp": "phase outcomes"})
    with pytest.raises(PipelineConfigError, match="no step 'spellcheck', which spellcheck results"):
        graph.require_steps({"nlp": "phase outcomes", "spellcheck": "spellcheck results"})
