"""The envelope every HuleEdu event travels in, generic over its `data` payload."""

import uuid
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator

from common_core.events.building_blocks import ContractModel, NonEmptyStr, UtcDatetime


def _canonical_uuid(value: str) -> str:
    # Canonical form, so one event id spelled in two letter cases is still one event.
    return str(uuid.UUID(value))


EventId = Annotated[str, AfterValidator(_canonical_uuid)]
DataT = TypeVar("DataT", bound=ContractModel)


class EventEnvelope(ContractModel, Generic[DataT]):
    event_id: EventId
    event_type: NonEmptyStr
    event_timestamp: UtcDatetime
    source_service: NonEmptyStr
    schema_version: int = 1
    correlation_id: str | None = None
    data_schema_uri: str | None = None
    data: DataT
