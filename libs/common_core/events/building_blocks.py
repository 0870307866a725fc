"""Pieces shared by the event payloads (CONTRACTS.md section 2, "shared building blocks")."""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


def _as_utc(value: datetime) -> datetime:
    # Producers send naive timestamps too; the contract says those are UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class ContractModel(BaseModel):
    # Producers add fields over time; unknown ones are ignored, never a reason to reject.
    model_config = ConfigDict(extra="ignore", frozen=True)


class EntityReference(ContractModel):
    entity_id: NonEmptyStr
    entity_type: str | None = None
    parent_id: str | None = None

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
    essay_id: NonEmptyStr
    text_storage_id: str | None = None
