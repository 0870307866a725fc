"""One fetch's messages, translated, and the fields that name the batch in log lines.

Batch-level lines carry the batch's ids (FetchedBatch.trace) so an operator can get from an
event's correlation id to the batch that carried it.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from batch_conductor_service.consumer.offsets import (
    ConsumedMessage,
    offset_extents,
)
from batch_conductor_service.consumer.translation import (
    TranslatedEvent,
    UnplacedEvent,
    UnprocessableEventError,
    translate,
)
from common_core.events import DeadLetterReason
from huleedu_service_libs.log_bounds import clip_error, clip_id

# Enough ids to find an event's story; a 500-message batch must not make a 500-id log line.
TRACED_IDS = 20


@dataclass(frozen=True, slots=True)
class GoodMessage:
    message: ConsumedMessage
    event: TranslatedEvent


@dataclass(frozen=True, slots=True)
class UnplacedMessage:
    """An essay result that named no batch: the placement step finds its batches."""

    message: ConsumedMessage
    event: UnplacedEvent


@dataclass(frozen=True, slots=True)
class BadMessage:
    message: ConsumedMessage
    error: UnprocessableEventError


@dataclass(frozen=True, slots=True)
class FetchedBatch:
    """One fetch's messages, translated: the events to store, the results to place first, and
    the messages to dead-letter."""

    messages: Sequence[ConsumedMessage]
    good: Sequence[GoodMessage]
    bad: Sequence[BadMessage]
    unplaced: Sequence[UnplacedMessage] = ()

    @classmethod
    def of(cls, messages: Sequence[ConsumedMessage]) -> "FetchedBatch":
        return _Sorter().add(messages).batch(messages)

    @classmethod
    async def of_yielding(
        cls, messages: Sequence[ConsumedMessage], chunk: int = 200
    ) -> "FetchedBatch":
        """`of`, giving the event loop a turn after every `chunk` messages: translation is CPU
        work, and a store write in flight beside it goes on at each turn."""
        sorter = _Sorter()
        for start in range(0, len(messages), chunk):
            sorter.add(messages[start : start + chunk])
            await asyncio.sleep(0)
        return sorter.batch(messages)

    def trace(self) -> dict[str, object]:
        """Log fields naming the batch: its partitions with offset ranges and (some of) its ids."""
        correlation_ids = [item.event.correlation_id for item in self.good]
        correlation_ids += [item.event.correlation_id for item in self.unplaced]
        correlation_ids += [item.error.correlation_id for item in self.bad]
        unique_correlation_ids = list(dict.fromkeys(c for c in correlation_ids if c))
        event_ids = [item.event.change.event_id for item in self.good]
        event_ids += [item.event.event_id for item in self.unplaced]
        return {
            "messages": len(self.messages),
            "partitions": offset_ranges(self.messages),
            "correlation_ids": [clip_id(c) for c in unique_correlation_ids[:TRACED_IDS]],
            "event_ids": [clip_id(e) for e in event_ids[:TRACED_IDS]],
            "ids_truncated": max(len(unique_correlation_ids), len(event_ids)) > TRACED_IDS,
        }


@dataclass(frozen=True, slots=True)
class Fetch:
    """One getmany's messages and their translation; `batch` None when translating the fetch
    failed as a whole (`translation_error`), which the consumer handles as a bug."""

    messages: list[ConsumerRecord[bytes, bytes]]
    batch: FetchedBatch | None
    translation_error: Exception | None = None

    @classmethod
    async def read(cls, consumer: AIOKafkaConsumer, timeout_ms: int, max_records: int) -> "Fetch":
        fetched = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        messages = [m for partition in fetched.values() for m in partition]
        try:
            return cls(messages, await FetchedBatch.of_yielding(messages))
        except Exception as exc:
            # Not pinned on a message (translation catches those).
            return cls(messages, None, exc)

    def trace(self) -> dict[str, object]:
        """Log fields naming the fetch; built only when a line needs them (the batch's summary
        line carries them on success)."""
        if self.batch is not None:
            return self.batch.trace()
        return {"partitions": offset_ranges(self.messages)}


class _Sorter:
    """Translates messages into the three kinds a FetchedBatch holds, keeping their order."""

    def __init__(self) -> None:
        self.good: list[GoodMessage] = []
        self.bad: list[BadMessage] = []
        self.unplaced: list[UnplacedMessage] = []

    def add(self, messages: Sequence[ConsumedMessage]) -> "_Sorter":
        for message in messages:
            try:
                event = translate(message.topic, message.value)
            except UnprocessableEventError as error:
                self.bad.append(BadMessage(message, error))
                continue
            except Exception as exc:
                # Translation is pure: an error nobody foresaw will recur on every try, so the
                # message is poison at once rather than a reason to stall its partition.
                self.bad.append(BadMessage(message, unforeseen_translation_error(exc)))
                continue
            if isinstance(event, UnplacedEvent):
                self.unplaced.append(UnplacedMessage(message, event))
            else:
                self.good.append(GoodMessage(message, event))
        return self

    def batch(self, messages: Sequence[ConsumedMessage]) -> FetchedBatch:
        return FetchedBatch(messages, self.good, self.bad, self.unplaced)


def unforeseen_translation_error(exc: Exception) -> UnprocessableEventError:
    return UnprocessableEventError(
        DeadLetterReason.PROCESSING_FAILED, f"translation raised {clip_error(exc)}"
    )


def offset_ranges(messages: Sequence[ConsumedMessage]) -> dict[str, list[int]]:
    """`topic/partition` -> [first offset, last offset], as the log lines show a batch."""
    return {
        f"{key.topic}/{key.partition}": [first, end - 1]
        for key, (first, end) in offset_extents(messages).items()
    }
