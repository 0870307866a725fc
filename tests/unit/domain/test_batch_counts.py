"""Counts decide completion exactly as the essay sets they count would: checked against the
rule written with sets, for any snapshot."""

from hypothesis import given
from hypothesis import strategies as st

from batch_conductor_service.domain.batch_counts import BatchCounts, StepCounts
from batch_conductor_service.domain.batch_state import BatchSnapshot, RosterSource
from batch_conductor_service.domain.completion import step_completion

ESSAYS = ("e1", "e2", "e3", "e4")
STEPS = ("spellcheck", "nlp")

essay_sets = st.frozensets(st.sampled_from(ESSAYS))


@st.composite
def snapshots(draw: st.DrawFn) -> BatchSnapshot:
    roster = draw(st.none() | essay_sets)
    succeeded = {step: draw(essay_sets) for step in STEPS}
    # The snapshot's invariant: failed never names an essay that also succeeded.
    failed = {step: draw(essay_sets) - succeeded[step] for step in STEPS}
    return BatchSnapshot(
        batch_id="b1",
        roster=roster,
        roster_source=None if roster is None else draw(st.sampled_from(list(RosterSource))),
        succeeded=succeeded,
        failed=failed,
    )


def complete_by_sets(step: str, snapshot: BatchSnapshot) -> bool:
    """Rule 3 of DESIGN.md written with the essay sets, as /define decided before counts."""
    roster = snapshot.roster
    if not roster:
        return False
    done_ok = roster & snapshot.succeeded_for(step)
    done_failed = (roster & snapshot.failed_for(step)) - done_ok
    return len(done_ok) + len(done_failed) == len(roster) and bool(done_ok)


@given(snapshots())
def test_counts_complete_a_step_exactly_when_the_sets_do(snapshot: BatchSnapshot) -> None:
    counts = BatchCounts.of(snapshot)
    for step in (*STEPS, "cj_assessment"):
        by_counts = step_completion(step, counts)
        assert by_counts.complete == complete_by_sets(step, snapshot)
        assert by_counts == step_completion(step, snapshot)


@given(snapshots())
def test_counts_are_the_sizes_of_the_sets(snapshot: BatchSnapshot) -> None:
    counts = BatchCounts.of(snapshot)
    roster = snapshot.roster or frozenset()
    assert counts.roster_size == (None if snapshot.roster is None else len(roster))
    for step in STEPS:
        succeeded, failed = snapshot.succeeded_for(step), snapshot.failed_for(step)
        assert counts.counts_for(step) == StepCounts(
            succeeded=len(succeeded),
            failed=len(failed),
            roster_succeeded=len(roster & succeeded),
            roster_failed=len(roster & failed),
        )


def test_a_step_without_outcomes_counts_nothing() -> None:
    assert BatchCounts(batch_id="b1").counts_for("nlp") == StepCounts()
