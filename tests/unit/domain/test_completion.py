"""The completion rule's statuses and its step-name check; the rule on snapshots is exercised
through the resolver in test_resolution_rules.py."""

from datetime import UTC, datetime

import pytest

from batch_conductor_service.domain.batch_state import BatchOutcome, BatchSnapshot
from batch_conductor_service.domain.completion import (
    outcome_finishes_step,
    step_completion,
)
from batch_conductor_service.domain.pipelines_file import parse_pipelines
from batch_conductor_service.domain.step_graph import PipelineConfigError
from common_core.enums import BatchPhaseStatus

T0 = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "finishes"),
    [
        (BatchPhaseStatus.COMPLETED_SUCCESSFULLY, True),
        (BatchPhaseStatus.COMPLETED_WITH_FAILURES, True),
        (BatchPhaseStatus.FAILED_CRITICALLY, False),
    ],
)
def test_which_batch_outcomes_finish_a_step(status: BatchPhaseStatus, finishes: bool) -> None:
    assert outcome_finishes_step(status) is finishes


def test_a_cj_completed_event_completes_the_step_and_a_cj_failed_one_does_not() -> None:
    def with_cj(status: BatchPhaseStatus) -> BatchSnapshot:
        return BatchSnapshot("b1", batch_outcomes={"cj_assessment": BatchOutcome(status, T0)})

    # As common_core's reader names the two CJ events' statuses.
    assert step_completion(
        "cj_assessment", with_cj(BatchPhaseStatus.COMPLETED_SUCCESSFULLY)
    ).complete
    assert not step_completion(
        "cj_assessment", with_cj(BatchPhaseStatus.FAILED_CRITICALLY)
    ).complete


def test_a_batch_with_nothing_about_the_step_has_no_evidence_to_report() -> None:
    completion = step_completion("spellcheck", BatchSnapshot.empty("b1"))
    assert not completion.complete
    assert not completion.has_evidence


def test_a_graph_lacking_a_step_that_events_report_is_refused_by_name() -> None:
    graph = parse_pipelines(
        "pipelines:\n  p:\n    steps:\n"
        "      - {name: nlp, service_name: s, event_type: e, event_data_model: m}\n"
    )
    graph.require_steps({"nlp": "phase outcomes"})
    with pytest.raises(PipelineConfigError, match="no step 'spellcheck', which spellcheck results"):
        graph.require_steps({"nlp": "phase outcomes", "spellcheck": "spellcheck results"})
