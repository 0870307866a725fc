"""/define's body is built without its pydantic model, on the hot path; it must be exactly what
the model (which the OpenAPI document describes) would give."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from batch_conductor_service.api.models import PipelineDefineResponse, define_response_body
from batch_conductor_service.domain.batch_state import (
    BatchCounts,
    RosterSource,
    StepCounts,
    StepOutcome,
)
from batch_conductor_service.domain.pipelines_file import load_pipelines
from batch_conductor_service.domain.resolution_rules import plan, prune
from common_core.enums import BatchPhaseStatus

GRAPH = load_pipelines(Path(__file__).resolve().parents[3] / "pipelines.yaml")
DONE = StepCounts(succeeded=3, roster_succeeded=3)
STATES = [
    BatchCounts(batch_id="unknown"),
    BatchCounts(
        batch_id="b1", roster_size=3, roster_source=RosterSource.READY, steps={"spellcheck": DONE}
    ),
    BatchCounts(
        batch_id="b2",
        roster_size=3,
        roster_source=RosterSource.REGISTERED,
        steps={"spellcheck": DONE, "nlp": StepCounts(failed=2, roster_failed=2)},
        latest={
            "cj_assessment": StepOutcome(
                BatchPhaseStatus.FAILED_CRITICALLY, datetime(2025, 1, 1, tzinfo=UTC)
            )
        },
    ),
]


@pytest.mark.parametrize("requested", ["comprehensive", "cj_assessment", "nlp", "ai_feedback"])
@pytest.mark.parametrize("state", STATES, ids=lambda s: s.batch_id)
def test_the_body_is_what_the_model_dumps(requested: str, state: BatchCounts) -> None:
    body = define_response_body(prune(GRAPH, plan(GRAPH, requested), state))
    assert body == PipelineDefineResponse.model_validate(body).model_dump()
    assert list(body) == list(PipelineDefineResponse.model_fields)
