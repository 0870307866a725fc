from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_conductor_service.domain.batch_state import (
    BatchCounts,
    BatchFacts,
    RosterSource,
    StepOutcome,
    count,
    step_completion,
)
from batch_conductor_service.domain.pipelines_file import load_pipelines, parse_pipelines
from batch_conductor_service.domain.resolution_rules import (
    RequestKind,
    Resolution,
    UnknownPipelineError,
    plan,
    prune,
)
from batch_conductor_service.domain.step_graph import StepGraph
from common_core.enums import BatchPhaseStatus

GRAPH = load_pipelines(Path(__file__).resolve().parents[3] / "pipelines.yaml")
T0 = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)
ROSTER = frozenset(f"e{i}" for i in range(30))


def snapshot(
    *,
    roster: frozenset[str] | None = None,
    succeeded: dict[str, set[str]] | None = None,
    failed: dict[str, set[str]] | None = None,
    outcomes: dict[str, StepOutcome] | None = None,
) -> BatchCounts:
    facts = BatchFacts(
        "b1",
        rosters={} if roster is None else {RosterSource.READY: set(roster)},
        succeeded={k: set(v) for k, v in (succeeded or {}).items()},
        failed={k: set(v) for k, v in (failed or {}).items()},
        outcomes={(step, o.status): o.at for step, o in (outcomes or {}).items()},
    )
    return count(facts)


def outcome(status: BatchPhaseStatus, minutes: int = 0) -> StepOutcome:
    return StepOutcome(status, T0 + timedelta(minutes=minutes))


def resolve(graph: StepGraph, requested: str, counts: BatchCounts) -> Resolution:
    return prune(graph, plan(graph, requested), counts)


EMPTY = BatchCounts("b1")


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("nlp", ["spellcheck", "nlp"]),
        ("cj_assessment", ["spellcheck", "cj_assessment"]),
        ("ai_feedback", ["spellcheck", "nlp", "ai_feedback"]),
        ("comprehensive", ["spellcheck", "nlp", "cj_assessment", "ai_feedback"]),
        ("spellcheck", ["spellcheck"]),
    ],
)
def test_unknown_batch_needs_every_step_dependencies_first(
    requested: str, expected: list[str]
) -> None:
    assert list(resolve(GRAPH, requested, EMPTY).final_pipeline) == expected


def test_pipeline_names_win_over_step_names() -> None:
    assert resolve(GRAPH, "cj_assessment", EMPTY).kind is RequestKind.PIPELINE
    assert resolve(GRAPH, "spellcheck", EMPTY).kind is RequestKind.STEP


def test_requesting_a_step_adds_its_dependencies_and_says_so() -> None:
    graph = replace(GRAPH, pipelines={"only_spellcheck": ("spellcheck",)})
    resolution = resolve(graph, "ai_feedback", EMPTY)
    assert resolution.kind is RequestKind.STEP
    assert resolution.final_pipeline == ("spellcheck", "nlp", "ai_feedback")
    assert resolution.added_dependencies == ("spellcheck", "nlp")
    assert "Added dependencies: spellcheck, nlp." in resolution.summary


def test_surrounding_whitespace_in_the_name_is_ignored() -> None:
    assert resolve(GRAPH, "  nlp ", EMPTY).requested == "nlp"


def test_unknown_name_lists_what_is_known() -> None:
    with pytest.raises(UnknownPipelineError) as caught:
        resolve(GRAPH, "grammar", EMPTY)
    assert caught.value.known_pipelines == ["ai_feedback", "cj_assessment", "comprehensive", "nlp"]
    assert "spellcheck" in caught.value.known_steps


@pytest.mark.parametrize(
    "status", [BatchPhaseStatus.COMPLETED_SUCCESSFULLY, BatchPhaseStatus.COMPLETED_WITH_FAILURES]
)
def test_completed_phase_outcome_prunes_the_step(status: BatchPhaseStatus) -> None:
    state = snapshot(outcomes={"spellcheck": outcome(status)})
    resolution = resolve(GRAPH, "cj_assessment", state)
    assert resolution.final_pipeline == ("cj_assessment",)
    assert [p.step for p in resolution.pruned] == ["spellcheck"]
    assert status.value in resolution.pruned[0].reason
    assert f"Pruned spellcheck: batch-level outcome {status.value}." in resolution.summary


def test_critically_failed_phase_is_not_complete() -> None:
    state = snapshot(outcomes={"spellcheck": outcome(BatchPhaseStatus.FAILED_CRITICALLY)})
    resolution = resolve(GRAPH, "cj_assessment", state)
    assert resolution.final_pipeline == ("spellcheck", "cj_assessment")
    assert "FAILED_CRITICALLY" in (resolution.summary or "")


def test_critical_failure_outranks_essays_that_all_finished() -> None:
    state = snapshot(
        roster=ROSTER,
        succeeded={"spellcheck": set(ROSTER)},
        outcomes={"spellcheck": outcome(BatchPhaseStatus.FAILED_CRITICALLY)},
    )
    assert not step_completion("spellcheck", state).complete


def test_one_essay_of_thirty_does_not_complete_the_batch() -> None:
    state = snapshot(roster=ROSTER, succeeded={"spellcheck": {"e0"}})
    resolution = resolve(GRAPH, "cj_assessment", state)
    assert resolution.final_pipeline == ("spellcheck", "cj_assessment")
    assert "1 of 30 essays finished" in resolution.summary


def test_every_essay_on_the_roster_finished_with_a_success_completes_the_step() -> None:
    state = snapshot(
        roster=ROSTER,
        succeeded={"spellcheck": set(ROSTER) - {"e1", "e2"}},
        failed={"spellcheck": {"e1", "e2"}},
    )
    completion = step_completion("spellcheck", state)
    assert completion.complete
    assert completion.reason == "all 30 essays on the roster finished (28 succeeded, 2 failed)"


def test_every_essay_failing_is_not_a_completion() -> None:
    state = snapshot(roster=ROSTER, failed={"spellcheck": set(ROSTER)})
    assert not step_completion("spellcheck", state).complete


def test_essay_outcomes_without_a_roster_prove_nothing() -> None:
    state = snapshot(succeeded={"spellcheck": set(ROSTER)})
    completion = step_completion("spellcheck", state)
    assert not completion.complete
    assert "roster is unknown" in completion.reason


def test_outcomes_for_essays_off_the_roster_do_not_count() -> None:
    roster = frozenset({"e1", "e2"})
    state = snapshot(roster=roster, succeeded={"spellcheck": {"e1", "x9", "x8"}})
    assert not step_completion("spellcheck", state).complete


def test_empty_roster_completes_nothing() -> None:
    assert not step_completion("spellcheck", snapshot(roster=frozenset())).complete


def test_all_done_gives_an_empty_pipeline_and_says_so() -> None:
    done = outcome(BatchPhaseStatus.COMPLETED_SUCCESSFULLY)
    state = snapshot(outcomes={step: done for step in GRAPH.order})
    resolution = resolve(GRAPH, "comprehensive", state)
    assert resolution.final_pipeline == ()
    assert resolution.stages == ()
    assert "Every step is already complete; nothing to run." in resolution.summary


def test_completed_dependent_is_pruned_even_when_its_dependency_is_not_proven() -> None:
    # Re-running a finished CJ step costs money; its own completion is what matters.
    state = snapshot(outcomes={"cj_assessment": outcome(BatchPhaseStatus.COMPLETED_SUCCESSFULLY)})
    assert resolve(GRAPH, "cj_assessment", state).final_pipeline == ("spellcheck",)


def test_stages_group_steps_that_can_run_in_parallel() -> None:
    resolution = resolve(GRAPH, "comprehensive", EMPTY)
    assert resolution.stages == (("spellcheck",), ("nlp", "cj_assessment"), ("ai_feedback",))


def test_stages_start_after_pruned_dependencies() -> None:
    state = snapshot(outcomes={"spellcheck": outcome(BatchPhaseStatus.COMPLETED_SUCCESSFULLY)})
    resolution = resolve(GRAPH, "comprehensive", state)
    assert resolution.stages == (("nlp", "cj_assessment"), ("ai_feedback",))


def test_failures_seen_are_reported_in_the_summary() -> None:
    state = snapshot(roster=ROSTER, failed={"spellcheck": {"e1", "e2"}})
    summary = resolve(GRAPH, "nlp", state).summary
    assert "spellcheck failed for 2 essays so far." in summary
    assert "spellcheck is not complete: 2 of 30 essays finished." in summary


@given(
    st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True).filter(lambda s: s != "cj_assessment")
)
def test_a_sentence_opening_with_a_step_name_keeps_the_name_as_spelled(step: str) -> None:
    graph = parse_pipelines(
        "pipelines:\n  p:\n    steps:\n"
        # Quoted: YAML reads a bare `no` or `on` as a boolean.
        f"      - {{name: '{step}', service_name: s, event_type: e, event_data_model: m}}\n"
        "      - {name: cj_assessment, service_name: s, event_type: e, event_data_model: m}\n"
    )
    state = snapshot(roster=ROSTER, failed={step: {"e1"}, "cj_assessment": {"e2"}})
    summary = resolve(graph, "p", state).summary
    assert f" {step} is not complete: 1 of 30 essays finished." in summary
    assert f" {step} failed for 1 essays so far." in summary
    assert " cj_assessment is not complete: 1 of 30 essays finished." in summary


def test_a_step_waits_for_a_pending_step_behind_a_pruned_one() -> None:
    graph = parse_pipelines(
        "pipelines:\n  p:\n    steps:\n"
        "      - {name: a, service_name: s, event_type: e, event_data_model: m, depends_on: []}\n"
        "      - {name: b, service_name: s, event_type: e, event_data_model: m, depends_on: [a]}\n"
        "      - {name: c, service_name: s, event_type: e, event_data_model: m, depends_on: [b]}\n"
    )
    state = snapshot(outcomes={"b": outcome(BatchPhaseStatus.COMPLETED_SUCCESSFULLY)})
    resolution = resolve(graph, "p", state)
    assert resolution.final_pipeline == ("a", "c")
    assert resolution.stages == (("a",), ("c",))
