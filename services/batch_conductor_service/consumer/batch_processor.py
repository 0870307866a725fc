"""Stores the effects of one fetched batch of messages and says which offsets may be committed.

Effects are written before anything is dead-lettered, so a store failure leaves no DLQ
record behind and the whole batch is simply retried. Both failures of our own
infrastructure (StateStoreUnavailableError, DeadLetterUnavailableError) propagate: the
caller must neither commit nor skip.

Logging: one INFO line per batch, named by FetchedBatch.trace; the per-event lines are DEBUG,
each bound to its event's correlation id.
"""

import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from batch_conductor_service.consumer.fetched_batch import BadMessage, FetchedBatch, GoodMessage
from batch_conductor_service.consumer.offsets import ConsumedMessage, PartitionKey, next_offsets
from batch_conductor_service.domain.batch_state import ApplyResult
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol, DlqProducerProtocol
from huleedu_service_libs.logging_utils import bound_context, get_logger

logger = get_logger(__name__)


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

    async def _store(self, good: Sequence[GoodMessage]) -> list[ApplyResult]:
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

    async def _dead_letter(self, item: BadMessage) -> None:
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
