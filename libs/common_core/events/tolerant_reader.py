"""Reads one consumed event, of either generation of the platform, into what it says.

The envelope is read first (both generations share it), then the payload by the formats its
topic may carry (topic_formats). A message that cannot be read raises UnreadableEventError
naming what is wrong, with the correlation id when the envelope had one.
"""

from typing import Any

from pydantic import ValidationError

from common_core.events.envelope import RawEventEnvelope
from common_core.events.payload_formats import PayloadRejectedError, read_payload
from common_core.events.readings import ReadEvent
from common_core.events.topic_formats import FORMATS_BY_TOPIC
from common_core.validation_errors import describe_problems

CONSUMED_TOPICS: tuple[str, ...] = tuple(str(topic) for topic in FORMATS_BY_TOPIC)


class UnknownTopicError(LookupError):
    def __init__(self, topic: str):
        super().__init__(f"no event contract for topic {topic!r}")
        self.topic = topic


class UnreadableEventError(ValueError):
    def __init__(self, detail: str, correlation_id: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.correlation_id = correlation_id


def read_event(topic: str, document: Any) -> ReadEvent:
    formats = FORMATS_BY_TOPIC.get(topic)
    if formats is None:
        raise UnknownTopicError(topic)
    try:
        envelope = RawEventEnvelope.model_validate(document)
    except ValidationError as exc:
        raise UnreadableEventError(_envelope_problems(exc), _correlation_id_of(document)) from None
    try:
        generation, reading = read_payload(formats, envelope.data)
    except PayloadRejectedError as exc:
        raise UnreadableEventError(str(exc), envelope.correlation_id) from None
    return ReadEvent(
        event_id=envelope.event_id,
        occurred_at=envelope.event_timestamp,
        correlation_id=envelope.correlation_id,
        generation=generation,
        reading=reading,
    )


def _envelope_problems(exc: ValidationError) -> str:
    return describe_problems(exc, limit=10)


def _correlation_id_of(document: Any) -> str | None:
    value = document.get("correlation_id") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None
