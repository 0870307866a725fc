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
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


@dataclass(frozen=True, slots=True)
class PartitionKey:
    topic: str
    partition: int


def next_offsets(messages: Sequence[ConsumedMessage]) -> dict[PartitionKey, int]:
    ends, _ = _extents(messages)
    return {PartitionKey(topic, partition): end for (topic, partition), end in ends.items()}


def first_offsets(messages: Sequence[ConsumedMessage]) -> Mapping[PartitionKey, int]:
    """Where to seek back to so that the same messages are fetched again."""
    _, starts = _extents(messages)
    return {PartitionKey(topic, partition): start for (topic, partition), start in starts.items()}


def offset_extents(
    messages: Sequence[ConsumedMessage],
) -> dict[PartitionKey, tuple[int, int]]:
    """Per partition, the first offset and the one after the last."""
    ends, starts = _extents(messages)
    return {PartitionKey(*key): (start, ends[key]) for key, start in starts.items()}


def _extents(
    messages: Sequence[ConsumedMessage],
) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    # Keyed by plain tuples in the loop: it runs for every message of every fetch, and a
    # dataclass key costs a Python __init__ and __hash__ per message.
    ends: dict[tuple[str, int], int] = {}
    starts: dict[tuple[str, int], int] = {}
    for message in messages:
        key = (message.topic, message.partition)
        offset = message.offset
        if key in starts:
            if offset < starts[key]:
                starts[key] = offset
            if offset >= ends[key]:
                ends[key] = offset + 1
        else:
            starts[key] = offset
            ends[key] = offset + 1
    return ends, starts
