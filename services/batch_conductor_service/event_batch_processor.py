"""Stores the effects of one fetched batch of messages and says which offsets may be committed.

Effects are written before anything is dead-lettered, so a store failure leaves no DLQ
record behind and the whole batch is simply retried. Both failures of our own
infrastructure (StateStoreUnavailableError, DeadLetterUnavailableError) propagate: the
caller must neither commit nor skip.

Logging: one INFO line per batch; the per-event lines are DEBUG, each bound to its event's
correlation id. Batch-level lines carry the batch's ids (FetchedBatch.trace) so an operator
can get from an event's correlation id to the batch that carried it.
"""

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from batch_conductor_service.batch_state import ApplyResult
from batch_conductor_service.event_translation import (
    TranslatedEvent,
    UnprocessableEventError,
    translate,
)
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol, DlqProducerProtocol
from huleedu_service_libs.logging_utils import bound_context, get_logger

logger = get_logger(__name__)

# Enough ids to find an event's story; a 500-message batch must not make a 500-id log line.
TRACED_IDS = 20


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


@dataclass(frozen=True, slots=True)
class _Good:
    message: ConsumedMessage
    event: TranslatedEvent


@dataclass(frozen=True, slots=True)
class _Bad:
    message: ConsumedMessage
    error: UnprocessableEventError


@dataclass(frozen=True, slots=True)
class FetchedBatch:
    """One fetch's messages, translated: the events to store and the messages to dead-letter."""

    messages: Sequence[ConsumedMessage]
    good: Sequence[_Good]
    bad: Sequence[_Bad]

    @classmethod
    def of(cls, messages: Sequence[ConsumedMessage]) -> "FetchedBatch":
        good: list[_Good] = []
        bad: list[_Bad] = []
        for message in messages:
            try:
                good.append(_Good(message, translate(message.topic, message.value)))
            except UnprocessableEventError as error:
                bad.append(_Bad(message, error))
        return cls(messages, good, bad)

    def trace(self) -> dict[str, object]:
        """Log fields naming the batch: its partitions with offset ranges and (some of) its ids."""
        correlation_ids = [item.event.correlation_id for item in self.good]
        correlation_ids += [item.error.correlation_id for item in self.bad]
        unique_correlation_ids = list(dict.fromkeys(c for c in correlation_ids if c))
        event_ids = [item.event.change.event_id for item in self.good]
        return {
            "messages": len(self.messages),
            "partitions": offset_ranges(self.messages),
            "correlation_ids": unique_correlation_ids[:TRACED_IDS],
            "event_ids": event_ids[:TRACED_IDS],
            "ids_truncated": max(len(unique_correlation_ids), len(event_ids)) > TRACED_IDS,
        }


class EventBatchProcessor:
    def __init__(
        self,
        repository: BatchStateRepositoryProtocol,
        dead_letters: DlqProducerProtocol,
        metrics: BcsMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._repository = repository
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._clock = clock

    async def process(self, batch: FetchedBatch) -> dict[PartitionKey, int]:
        """Returns, per partition, the offset to commit: one past the last message handled."""
        started = time.perf_counter()
        results = await self._store(batch.good)
        for item in batch.bad:
            await self._dead_letter(item)
        elapsed = time.perf_counter() - started
        self._metrics.consumer_batch_seconds.observe(elapsed)
        outcomes = Counter(result.value for result in results)
        logger.info(
            "event_batch_stored",
            applied=outcomes[ApplyResult.APPLIED.value],
            duplicate=outcomes[ApplyResult.DUPLICATE.value],
            dead_lettered=len(batch.bad),
            seconds=round(elapsed, 4),
            **batch.trace(),
        )
        return next_offsets(batch.messages)

    def count_retried(self, messages: Sequence[ConsumedMessage]) -> None:
        for message in messages:
            self._metrics.events_processed.labels(message.topic, "retried").inc()

    async def _store(self, good: Sequence[_Good]) -> list[ApplyResult]:
        if not good:
            return []
        results = await self._repository.apply_many([item.event.change for item in good])
        for item, result in zip(good, results, strict=True):
            change = item.event.change
            self._metrics.events_processed.labels(item.message.topic, result.value).inc()
            with bound_context(correlation_id=item.event.correlation_id):
                logger.debug(
                    "event_stored",
                    result=result.value,
                    event_id=change.event_id,
                    batch_id=change.batch_id,
                    topic=item.message.topic,
                    partition=item.message.partition,
                    offset=item.message.offset,
                )
        applied = [
            item.event.change.occurred_at
            for item, result in zip(good, results, strict=True)
            if result is ApplyResult.APPLIED
        ]
        # Duplicates are replays of old news: counting them would make a redelivery look fresh.
        if applied:
            age = (self._clock() - max(applied)).total_seconds()
            self._metrics.last_event_age.set(max(0.0, age))
        return results

    async def _dead_letter(self, item: _Bad) -> None:
        message, error = item.message, item.error
        await self._dead_letters.send(
            original_topic=message.topic,
            payload=message.value or b"",
            reason=error.reason.value,
            error=error.detail,
            partition=message.partition,
            offset=message.offset,
            correlation_id=error.correlation_id,
        )
        self._metrics.dlq_records.labels(message.topic, error.reason.value).inc()
        self._metrics.events_processed.labels(message.topic, "dead_lettered").inc()
        with bound_context(correlation_id=error.correlation_id):
            logger.warning(
                "event_dead_lettered",
                reason=error.reason.value,
                error=error.detail,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )


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


def offset_ranges(messages: Sequence[ConsumedMessage]) -> dict[str, list[int]]:
    """`topic/partition` -> [first offset, last offset], as the log lines show a batch."""
    ends = next_offsets(messages)
    return {
        f"{key.topic}/{key.partition}": [first, ends[key] - 1]
        for key, first in first_offsets(messages).items()
    }
