"""Reads every record of a dead-letter topic, from its first offset to its end, without a
consumer group: looking commits nothing and moves nobody's offsets."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from common_core.events import DeadLetterRecord
from common_core.topics import DLQ_SUFFIX, dlq_topic


class DeadLetterTopicMissingError(LookupError):
    """The broker has no such dead-letter topic: nothing was ever dead-lettered from it.
    `dead_lettered` names the topics whose dead-letter topics it has."""

    def __init__(self, name: str, dead_lettered: list[str]) -> None:
        super().__init__(f"the broker has no topic {name}")
        self.dead_lettered = dead_lettered


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """One record of `<topic>.DLQ` where it sits there; `record` is None when the value is not a
    dead-letter record at all, and `problem` then says why."""

    partition: int
    offset: int
    timestamp: datetime | None
    record: DeadLetterRecord | None
    problem: str | None = None

    @property
    def reason(self) -> str | None:
        return None if self.record is None else str(self.record.reason)


@dataclass(frozen=True, slots=True)
class Selection:
    reasons: frozenset[str] = frozenset()
    from_offset: int | None = None
    to_offset: int | None = None
    # Offsets count per partition: with a dead-letter topic of several, name the partition.
    partition: int | None = None

    def matches(self, entry: DeadLetterEntry) -> bool:
        if self.reasons and entry.reason not in self.reasons:
            return False
        if self.partition is not None and entry.partition != self.partition:
            return False
        if self.from_offset is not None and entry.offset < self.from_offset:
            return False
        return self.to_offset is None or entry.offset <= self.to_offset


def parse_entry(
    partition: int, offset: int, timestamp_ms: int | None, value: bytes | None
) -> DeadLetterEntry:
    timestamp = None if timestamp_ms is None else datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    try:
        record = DeadLetterRecord.model_validate_json(value or b"")
    except ValidationError as exc:
        problem = f"not a dead-letter record: {exc.errors()[0]['msg']}"
        return DeadLetterEntry(partition, offset, timestamp, None, problem)
    return DeadLetterEntry(partition, offset, timestamp, record)


async def read_dead_letters(
    bootstrap_servers: str,
    topic: str,
    request_timeout_seconds: float = 10.0,
    idle_seconds: float = 1.0,
) -> list[DeadLetterEntry]:
    """Every record of `topic`'s dead-letter topic, by partition then offset."""
    name = dlq_topic(topic)
    timeout_ms = int(request_timeout_seconds * 1000)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=max(timeout_ms, 1000),
    )
    try:
        await consumer.start()
        # topics() asks the broker (without creating anything); partitions_for_topic then
        # reads the metadata it brought.
        topics = await consumer.topics()
        partitions = consumer.partitions_for_topic(name) if name in topics else None
        if not partitions:
            dead_lettered = sorted(
                t.removesuffix(DLQ_SUFFIX) for t in topics if t.endswith(DLQ_SUFFIX)
            )
            raise DeadLetterTopicMissingError(name, dead_lettered)
        assigned = [TopicPartition(name, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        return await _read_to_the_end(consumer, assigned, timeout_ms, int(idle_seconds * 1000))
    finally:
        await consumer.stop()


async def _read_to_the_end(
    consumer: AIOKafkaConsumer, assigned: list[TopicPartition], timeout_ms: int, idle_ms: int
) -> list[DeadLetterEntry]:
    """The end offsets the broker reports are only a floor: the bundled broker (Tansu) reports
    the base offset of a partition's last batch plus one, so records sent together count as
    one. Once they are reached, fetching goes on until a fetch brings nothing for `idle_ms`."""
    ends = await consumer.end_offsets(assigned)
    entries: list[DeadLetterEntry] = []
    while True:
        reached = all([await consumer.position(tp) >= ends[tp] for tp in assigned])
        fetched = await consumer.getmany(*assigned, timeout_ms=idle_ms if reached else timeout_ms)
        if not fetched:
            if reached:
                break
            raise TimeoutError(f"no records arrived within {timeout_ms} ms")
        for tp, messages in fetched.items():
            entries.extend(
                parse_entry(tp.partition, message.offset, message.timestamp, message.value)
                for message in messages
            )
    return sorted(entries, key=lambda entry: (entry.partition, entry.offset))


def select(entries: Sequence[DeadLetterEntry], selection: Selection) -> list[DeadLetterEntry]:
    return [entry for entry in entries if selection.matches(entry)]
