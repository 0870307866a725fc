"""Pieces shared by the event payloads (docs/events.md)."""

import re
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

# The longest id or name an event may carry. Ids end up in Redis keys and set members,
# PostgreSQL primary keys (whose index entries cannot exceed about 2.7 KB) and log lines.
MAX_IDENTIFIER_LENGTH = 255

# C0 and C1 control characters, and lone surrogates (which no encoder can write as UTF-8).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def printable(value: str) -> str:
    # A control character (NUL above all, which PostgreSQL cannot store) would make a message
    # that can never be stored, so it is refused here and the message dead-lettered instead.
    # Printable ASCII holds none of them, and saying so costs less than the search.
    if not (value.isascii() and value.isprintable()) and _UNPRINTABLE.search(value):
        raise ValueError("must not contain control characters")
    return value


def _step_name(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _utc(moment: datetime) -> datetime:
    # A time near the ends of the calendar (year 1 east of UTC, year 9999 west of it) has no
    # UTC spelling: converting it overflows, which must read as an invalid field, not a crash.
    try:
        return as_utc(moment)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


# For the timestamps BCS compares or keeps (the envelope's, a dead-letter record's). A payload's
# own timestamps are plain datetimes: their format is checked, but nothing reads them, and the
# conversion is a Python call per field per event.
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_IDENTIFIER_LENGTH),
    AfterValidator(printable),
]


def _blank_as_none(value: object) -> object:
    # Producers write "" (or nothing) where they have no id; that means absent, not an id.
    return None if isinstance(value, str) and not value.strip() else value


# An id that may be absent, with blank read as absent; a present one is an Identifier.
MaybeIdentifier = Annotated[Identifier | None, BeforeValidator(_blank_as_none)]
# A correlation id travels in log lines and dead-letter records: bounded and printable too.
CorrelationId = Annotated[
    str, StringConstraints(max_length=MAX_IDENTIFIER_LENGTH), AfterValidator(printable)
]
# Blank is absent here too: an empty correlation id correlates nothing.
MaybeCorrelationId = Annotated[CorrelationId | None, BeforeValidator(_blank_as_none)]
# How pipelines.yaml spells a step; producers' case is forgiven, anything else is refused.
StepName = Annotated[
    str,
    BeforeValidator(_step_name),
    StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=MAX_IDENTIFIER_LENGTH),
]


class ContractModel(BaseModel):
    # Producers add fields over time; unknown ones are ignored, never a reason to reject.
    model_config = ConfigDict(extra="ignore", frozen=True)


class EntityReference(ContractModel):
    entity_id: Identifier
    entity_type: str | None = None
    parent_id: MaybeIdentifier = None


class SystemMetadata(ContractModel):
    entity: EntityReference
    timestamp: datetime | None = None
    processing_stage: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    event: str | None = None
    error_info: dict[str, Any] = Field(default_factory=dict)


class EssayProcessingInputRef(ContractModel):
    essay_id: Identifier
    text_storage_id: str | None = None
