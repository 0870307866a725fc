"""The envelope every HuleEdu event travels in, generic over its `data` payload.

Both generations of the platform fit it: the seed era's `correlation_id` may be null, the
current one's is always a UUID (either way it arrives as a string, or not at all), and only
the current one adds a `metadata` object (trace keys, a partition key), of which BCS reads
only the W3C trace context (huleedu_service_libs.trace_context).
"""

import re
import uuid
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator

from common_core.events.building_blocks import (
    ContractModel,
    MaybeCorrelationId,
    NonEmptyStr,
    UtcDatetime,
)

_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _canonical_uuid(value: str) -> str:
    # Canonical form, so one event id spelled in two letter cases is still one event. Producers
    # write it canonical already: that is recognised without parsing it.
    if _CANONICAL_UUID.fullmatch(value):
        return value
    return str(uuid.UUID(value))


EventId = Annotated[str, AfterValidator(_canonical_uuid)]
DataT = TypeVar("DataT", bound=ContractModel)


class EnvelopeFields(ContractModel):
    event_id: EventId
    event_type: NonEmptyStr
    event_timestamp: UtcDatetime
    source_service: NonEmptyStr
    schema_version: int = 1
    correlation_id: MaybeCorrelationId = None
    data_schema_uri: str | None = None
    metadata: dict[str, Any] | None = None


class EventEnvelope(EnvelopeFields, Generic[DataT]):
    data: DataT


class RawEventEnvelope(EnvelopeFields):
    """The envelope with its payload still unread, for a reader that must first decide which
    generation of the payload's contract it is written in."""

    data: dict[str, Any]
