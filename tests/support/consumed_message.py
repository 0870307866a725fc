"""A consumed Kafka message as the consumer reads one (consumer/offsets.py ConsumedMessage),
for tests that hand the processor messages without a broker."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    value: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
