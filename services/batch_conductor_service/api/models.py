"""Request and response bodies of the HTTP API (CONTRACTS.md section 1)."""

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from batch_conductor_service.domain.resolution_rules import Resolution
from common_core.events.building_blocks import Identifier, printable


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

    @classmethod
    def from_resolution(cls, resolution: Resolution) -> "PipelineDefineResponse":
        return cls(
            batch_id=resolution.batch_id,
            final_pipeline=list(resolution.final_pipeline),
            analysis_summary=resolution.summary,
            requested_pipeline=resolution.requested,
            resolved_as=resolution.kind.value,
            added_dependencies=list(resolution.added_dependencies),
            pruned_steps=[PrunedStepModel(step=p.step, reason=p.reason) for p in resolution.pruned],
            stages=[list(stage) for stage in resolution.stages],
        )


class ErrorResponse(BaseModel):
    error: str = Field(description="Machine-readable code.")
    detail: Any = Field(default=None, description="What went wrong, for a human or a client.")
