"""Sends the original payloads of chosen dead-letter records back to their topic. Repeating a
replay is safe: BCS applies an event once by its id, whatever the number of deliveries.

Each payload goes with a header naming the record it came from. Should the message fail again,
its record is still in the dead-letter topic: the producer appends no second one (replaying
poison repeatedly would otherwise double the DLQ each time), and logs and counts the failure."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from batch_conductor_service.dead_letter.reader import DeadLetterEntry
from common_core.events import DeadLetterRecord
from common_core.topics import dlq_topic
from huleedu_service_libs.trace_context import NO_TRACE, as_headers, normalised

REPLAY_HEADER = "bcs-replay-of"


def replay_header(dlq_topic_name: str, partition: int, offset: int) -> tuple[str, bytes]:
    """The header a replayed message carries: `<dlq topic>/<partition>/<offset>`."""
    return REPLAY_HEADER, f"{dlq_topic_name}/{partition}/{offset}".encode()


def replayed_from(
    headers: Sequence[tuple[str, bytes | None]] | None, original_topic: str
) -> str | None:
    """The DLQ record (`<dlq topic>/<partition>/<offset>`) a message of `original_topic` was
    replayed from, or None. A header naming a record of another topic's DLQ, or not shaped
    like one, does not count: that message is dead-lettered as any other."""
    for name, value in headers or ():
        if name != REPLAY_HEADER or value is None:
            continue
        try:
            origin = value.decode("ascii")
        except UnicodeDecodeError:
            return None
        topic, _, position = origin.rpartition("/")
        topic, _, partition = topic.rpartition("/")
        if topic == dlq_topic(original_topic) and partition.isdigit() and position.isdigit():
            return origin
        return None
    return None


@dataclass(frozen=True, slots=True)
class ReplayItem:
    entry: DeadLetterEntry
    payload: bytes | None
    # Why this record cannot be replayed (then payload is None).
    skipped: str | None = None


def plan_replay(entries: Sequence[DeadLetterEntry], topic: str) -> list[ReplayItem]:
    """What a replay would send, and what it must leave out and why; sends nothing."""
    items = []
    for entry in entries:
        record = entry.record
        if record is None:
            items.append(ReplayItem(entry, None, entry.problem or "not a dead-letter record"))
        elif record.original_topic != topic:
            items.append(ReplayItem(entry, None, f"its original topic is {record.original_topic}"))
        elif record.original_payload_truncated:
            # A prefix would only be dead-lettered again, or worse, read as something else.
            items.append(ReplayItem(entry, None, _truncated(record)))
        elif not payload_matches_digest(record):
            items.append(ReplayItem(entry, None, _altered(record)))
        else:
            try:
                items.append(ReplayItem(entry, record.payload_bytes()))
            except ValueError as exc:
                items.append(ReplayItem(entry, None, str(exc)))
    return items


def payload_matches_digest(record: DeadLetterRecord) -> bool:
    """Whether the payload is the one whose SHA-256 the record gives (True without a digest or
    with a payload that does not decode: neither can be checked here)."""
    digest = record.original_payload_sha256
    if digest is None or record.original_payload_truncated:
        return True
    try:
        payload = record.payload_bytes()
    except ValueError:
        return True
    return hashlib.sha256(payload).hexdigest() == digest.lower()


def _altered(record: DeadLetterRecord) -> str:
    return (
        f"its payload does not match its original_payload_sha256 "
        f"{record.original_payload_sha256}: it is not the message that failed"
    )


def _truncated(record: DeadLetterRecord) -> str:
    whole = record.original_payload_length
    digest = record.original_payload_sha256
    return (
        "the record holds only a prefix of the payload"
        + (f" ({whole} bytes" if whole is not None else " (")
        + (f", sha256 {digest})" if digest else ")")
        + "; replay the original from its producer"
    )


def replay_headers(topic: str, item: ReplayItem) -> list[tuple[str, bytes]]:
    """The headers a replayed message carries: the record it came from (so that one failing
    again is not dead-lettered twice), and the record's trace context, so that the replay
    continues the failed message's trace (a context that is not valid W3C is left out)."""
    origin = replay_header(dlq_topic(topic), item.entry.partition, item.entry.offset)
    record = item.entry.record
    carrier = normalised(record.trace_context or NO_TRACE) if record is not None else NO_TRACE
    return [origin, *as_headers(carrier)]


async def replay(bootstrap_servers: str, topic: str, items: Sequence[ReplayItem]) -> int:
    """Publishes the replayable items in DLQ order, each with its replay_headers; returns how
    many were sent."""
    sendable = [item for item in items if item.payload is not None]
    if not sendable:
        return 0
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    try:
        await producer.start()
        for item in sendable:
            await producer.send_and_wait(topic, item.payload, headers=replay_headers(topic, item))
    finally:
        await producer.stop()
    return len(sendable)
