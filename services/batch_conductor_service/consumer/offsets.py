"""Where a batch of messages sits in its partitions: what to commit and where to seek back to."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class ConsumedMessage(Protocol):
    """The parts of an aiokafka ConsumerRecord the processor reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class PartitionKey:
    topic: str
    partition: int


def next_offsets(messages: Sequence[ConsumedMessage]) -> dict[PartitionKey, int]:
    offsets: dict[PartitionKey, int] = {}
    for message in messages:
        key = PartitionKey(message.topic, message.partition)
        offsets[key] = max(offsets.get(key, 0), message.offset + 1)
    return offsets


def first_offsets(messages: Sequence[ConsumedMessage]) -> Mapping[PartitionKey, int]:
    """Where to seek back to so that the same messages are fetched again."""
    offsets: dict[PartitionKey, int] = {}
    for message in messages:
        key = PartitionKey(message.topic, message.partition)
        offsets[key] = min(offsets.get(key, message.offset), message.offset)
    return offsets
