"""A consumed Kafka message as the pipeline reads one (consumer/pipeline.py Record), for tests
that hand the pipeline messages without a broker."""

from dataclasses import dataclass
from typing import Any

from tests.support.event_factory import encode


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    value: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def msg(topic: str, offset: int, document: dict[str, Any], partition: int = 0) -> Message:
    return Message(topic, partition, offset, encode(document))
