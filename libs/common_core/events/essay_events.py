"""Per-essay results (docs/events.md)."""

from datetime import datetime
from typing import Any

from common_core.events.building_blocks import (
    ContractModel,
    EntityReference,
    NonEmptyStr,
    SystemMetadata,
)


class SpellcheckResultDataV1(ContractModel):
    event_name: str | None = None
    entity_ref: EntityReference
    timestamp: datetime | None = None
    # Any status string is accepted; only two of them are terminal (see EssayStatus).
    status: NonEmptyStr
    system_metadata: SystemMetadata | None = None
    original_text_storage_id: str | None = None
    storage_metadata: dict[str, Any] | None = None
    corrections_made: int | None = None

    @property
    def batch_id(self) -> str | None:
        """`entity_ref.parent_id`, else `system_metadata.entity.parent_id`; None when neither."""
        if self.entity_ref.parent_id is not None:
            return self.entity_ref.parent_id
        if self.system_metadata is not None:
            return self.system_metadata.entity.parent_id
        return None
