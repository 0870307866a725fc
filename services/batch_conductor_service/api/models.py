"""Request and response bodies of the HTTP API (docs/api.md)."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from batch_conductor_service.domain.batch_state import BatchCounts, step_completion
from batch_conductor_service.domain.resolution_rules import Resolution
from common_core.events.building_blocks import Identifier, StepName, printable


class PipelineDefineRequest(BaseModel):
    # Unknown fields are ignored so older and newer BOS clients both work.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    # Bounded and printable as event ids are: the id names Redis keys and PostgreSQL rows.
    batch_id: Identifier
    requested_pipeline: Annotated[
        str, Field(min_length=1, max_length=100), AfterValidator(printable)
    ]
    # Any string is accepted; only a printable one of at most 255 characters is adopted.
    correlation_id: str | None = None
    batch_metadata: dict[str, Any] | None = None


class PhaseCompleteRequest(BaseModel):
    """What the current BOS's `report_phase_completion` sends."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    batch_id: Identifier
    phase_name: StepName = Field(description="A step of pipelines.yaml.")
    # The original defaulted a missing `success` to true; a non-boolean is refused.
    success: StrictBool = True
    correlation_id: str | None = None


class PhaseCompleteResponse(BaseModel):
    status: str = Field(description="Always 'recorded'.")
    batch_id: str
    phase_name: str
    success: bool


class PrunedStepModel(BaseModel):
    step: str
    reason: str


class PipelineDefineResponse(BaseModel):
    batch_id: str
    final_pipeline: list[str]
    analysis_summary: str | None
    requested_pipeline: str = Field(description="The name as resolved, stripped of whitespace.")
    resolved_as: str = Field(description="'pipeline' or 'step'.")
    added_dependencies: list[str] = Field(
        description="Steps added because a requested step depends on them."
    )
    pruned_steps: list[PrunedStepModel] = Field(
        description="Steps left out because the batch has completed them, with the evidence."
    )
    stages: list[list[str]] = Field(
        description="final_pipeline grouped into stages; steps within a stage may run in parallel."
    )


def define_response_body(resolution: Resolution) -> dict[str, Any]:
    """PipelineDefineResponse's JSON body, built without the model: /define's hot path."""
    return {
        "batch_id": resolution.batch_id,
        "final_pipeline": list(resolution.final_pipeline),
        "analysis_summary": resolution.summary,
        "requested_pipeline": resolution.requested,
        "resolved_as": resolution.kind.value,
        "added_dependencies": list(resolution.added_dependencies),
        "pruned_steps": [{"step": p.step, "reason": p.reason} for p in resolution.pruned],
        "stages": [list(stage) for stage in resolution.stages],
    }


class ErrorResponse(BaseModel):
    error: str = Field(description="Machine-readable code.")
    detail: Any = Field(default=None, description="What went wrong, for a human or a client.")


class RosterModel(BaseModel):
    size: int = Field(description="Essays on the roster.")
    source: str = Field(description="'ready' (BatchEssaysReady) or 'registered'.")


class BatchOutcomeModel(BaseModel):
    status: str
    occurred_at: datetime


class StepStateModel(BaseModel):
    step: str
    essays_succeeded: int
    essays_failed: int = Field(description="Essays that failed and never succeeded.")
    latest_batch_outcome: BatchOutcomeModel | None
    complete: bool = Field(description="Whether /define would prune the step.")
    reason: str = Field(description="The evidence /define gives for pruning it, or not.")

    @classmethod
    def of(cls, step: str, counts: BatchCounts) -> "StepStateModel":
        """With the completion rule /define applies, so the two never disagree."""
        completion = step_completion(step, counts)
        essays, outcome = counts.counts_for(step), counts.latest.get(step)
        return cls(
            step=step,
            essays_succeeded=essays.succeeded,
            essays_failed=essays.failed,
            latest_batch_outcome=None
            if outcome is None
            else BatchOutcomeModel(status=outcome.status.value, occurred_at=outcome.at),
            complete=completion.complete,
            reason=completion.reason,
        )


class BatchInspectionResponse(BaseModel):
    batch_id: str
    roster: RosterModel | None = Field(description="None until a roster event was applied.")
    steps: list[StepStateModel] = Field(description="Every step of pipelines.yaml, in order.")
    last_event_at: datetime | None = Field(
        description="The newest event time applied to the batch; None for state stored before "
        "BCS recorded it."
    )

    @classmethod
    def from_report(cls, counts: BatchCounts, steps: tuple[str, ...]) -> "BatchInspectionResponse":
        roster = (
            None
            if counts.roster_size is None or counts.roster_source is None
            else RosterModel(size=counts.roster_size, source=counts.roster_source.value)
        )
        return cls(
            batch_id=counts.batch_id,
            roster=roster,
            steps=[StepStateModel.of(step, counts) for step in steps],
            last_event_at=counts.last_event_at,
        )
