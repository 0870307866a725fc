"""Pieces shared by the event payloads (CONTRACTS.md section 2, "shared building blocks")."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from common_core.timestamps import as_utc


def _printable(value: str) -> str:
    # Ids end up in Redis set members, PostgreSQL text and log lines: a control character
    # (NUL above all, which PostgreSQL cannot store) would make a message that can never be
    # stored, so it is refused here and the message dead-lettered instead.
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError("must not contain control characters")
    return value


def _step_name(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]
NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_printable)
]
OptionalIdentifier = Annotated[str, AfterValidator(_printable)] | None
# How pipelines.yaml spells a step; producers' case is forgiven, anything else is refused.
StepName = Annotated[
    str, BeforeValidator(_step_name), StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")
]


class ContractModel(BaseModel):
    # Producers add fields over time; unknown ones are ignored, never a reason to reject.
    model_config = ConfigDict(extra="ignore", frozen=True)


class EntityReference(ContractModel):
    entity_id: Identifier
    entity_type: str | None = None
    parent_id: OptionalIdentifier = None

    @property
    def parent(self) -> str | None:
        """The parent id, with blank treated as absent."""
        if self.parent_id is None or not self.parent_id.strip():
            return None
        return self.parent_id.strip()


class SystemMetadata(ContractModel):
    entity: EntityReference
    timestamp: UtcDatetime | None = None
    processing_stage: str | None = None
    started_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None
    event: str | None = None
    error_info: dict[str, Any] = Field(default_factory=dict)


class EssayProcessingInputRef(ContractModel):
    essay_id: Identifier
    text_storage_id: str | None = None
