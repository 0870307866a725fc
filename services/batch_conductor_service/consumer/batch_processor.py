"""Stores the effects of one fetched batch of messages and says which offsets may be committed.

Effects are written before anything is dead-lettered, so a store outage leaves no DLQ record
behind and the whole batch is simply retried. Both failures of our own infrastructure
(StateStoreUnavailableError, DeadLetterUnavailableError) propagate: the caller must neither
commit nor skip. Any other failure is pinned on the message that causes it (IsolatingWriter),
which is dead-lettered while the rest of the batch is stored: the batch is always committed.

Essay results that name no batch are first given their batches by the placement step
(consumer/placement_step.py); the changes it derives are stored after the fetch's own.

Logging: one INFO line per batch, named by FetchedBatch.trace; the per-event lines are DEBUG,
each bound to its event's correlation id.
"""

import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from batch_conductor_service.consumer.clock_skew import change_time, result_time, split_by_clock
from batch_conductor_service.consumer.fetched_batch import (
    BadMessage,
    FetchedBatch,
    GoodMessage,
    UnplacedMessage,
)
from batch_conductor_service.consumer.isolation import IsolatingWriter, PoisonMessage
from batch_conductor_service.consumer.offsets import ConsumedMessage, PartitionKey, next_offsets
from batch_conductor_service.consumer.placement_step import Placed, ResultPlacer
from batch_conductor_service.consumer.translation import UnprocessableEventError
from batch_conductor_service.domain.batch_state import ApplyResult, BatchStateChange
from batch_conductor_service.errors import DeadLetterUnavailableError, StateStoreUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import (
    BatchStateRepositoryProtocol,
    DlqProducerProtocol,
    EssayPlacementProtocol,
)
from common_core.events import DeadLetterReason
from huleedu_service_libs.log_bounds import clip, clip_error, clip_id
from huleedu_service_libs.logging_utils import bound_context, get_logger, logs_at

logger = get_logger(__name__)


class EventBatchProcessor:
    def __init__(
        self,
        repository: BatchStateRepositoryProtocol,
        dead_letters: DlqProducerProtocol,
        metrics: BcsMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        placement: EssayPlacementProtocol,
        max_attempts: int = 3,
        retry_delay_seconds: float = 0.05,
        max_clock_skew_seconds: float = 3600.0,
    ) -> None:
        self._writer = IsolatingWriter(
            repository,
            max_attempts=max_attempts,
            retry_delay_seconds=retry_delay_seconds,
            on_isolation=metrics.consumer_errors.labels("isolating").inc,
        )
        self._repository = repository
        self._placer = ResultPlacer(placement)
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._clock = clock
        self._max_skew = timedelta(seconds=max_clock_skew_seconds)

    async def process(self, batch: FetchedBatch) -> dict[PartitionKey, int]:
        """Returns, per partition, the offset to commit: one past the last message handled."""
        started = time.perf_counter()
        now = self._clock()
        good, future = split_by_clock(batch.good, change_time, now, self._max_skew)
        unplaced, future_unplaced = split_by_clock(batch.unplaced, result_time, now, self._max_skew)
        to_place = [item.event.result for item in unplaced if item.event.result is not None]
        placed = await self._placer.place([item.event.change for item in good], to_place)
        results, poison = await self._store(good)
        placed_changes = placed.changes
        placed_results = await self._repository.apply_many(placed_changes) if placed_changes else []
        self._count_placement(unplaced, placed, placed_changes, placed_results)
        bad = [*batch.bad, *future, *future_unplaced, *poison]
        for item in bad:
            await self._dead_letter(item)
        elapsed = time.perf_counter() - started
        self._metrics.consumer_batch_seconds.observe(elapsed)
        outcomes = Counter(result.value for result in results)
        logger.info(
            "event_batch_stored",
            applied=outcomes[ApplyResult.APPLIED.value],
            duplicate=outcomes[ApplyResult.DUPLICATE.value],
            dead_lettered=len(bad),
            unplaced=len(unplaced),
            placed=len(placed_changes),
            seconds=round(elapsed, 4),
            **batch.trace(),
        )
        return next_offsets(batch.messages)

    async def process_one_by_one(
        self, messages: Sequence[ConsumedMessage]
    ) -> dict[PartitionKey, int]:
        """`process` for each message alone, after `process` failed with an error nobody
        foresaw: a message whose handling fails again, alone, is dead-lettered as poison.
        Outages still propagate."""
        for message in messages:
            try:
                await self.process(FetchedBatch.of([message]))
            except (StateStoreUnavailableError, DeadLetterUnavailableError):
                raise
            except Exception as exc:
                logger.exception("event_failed_unexpectedly", offset=message.offset)
                error = UnprocessableEventError(
                    DeadLetterReason.PROCESSING_FAILED, f"handling raised {clip_error(exc)}"
                )
                await self._dead_letter(BadMessage(message, error))
        return next_offsets(messages)

    def count_retried(self, messages: Sequence[ConsumedMessage]) -> None:
        for message in messages:
            self._metrics.events_processed.labels(message.topic, "retried").inc()

    async def _store(
        self, good: Sequence[GoodMessage]
    ) -> tuple[list[ApplyResult], list[BadMessage]]:
        written = await self._writer.write(good)
        stored = [(s.item, s.result) for s in written.stored]
        debug = logs_at("debug")
        for item, result in stored:
            change = item.event.change
            self._metrics.events_processed.labels(item.message.topic, result.value).inc()
            if not debug:
                continue
            with bound_context(correlation_id=clip_id(item.event.correlation_id)):
                logger.debug(
                    "event_stored",
                    result=result.value,
                    event_id=clip_id(change.event_id),
                    batch_id=clip_id(change.batch_id),
                    topic=item.message.topic,
                    partition=item.message.partition,
                    offset=item.message.offset,
                )
        applied = [
            item.event.change.occurred_at
            for item, result in stored
            if result is ApplyResult.APPLIED
        ]
        # Duplicates are replays of old news: counting them would make a redelivery look fresh.
        if applied:
            age = (self._clock() - max(applied)).total_seconds()
            self._metrics.last_event_age.set(max(0.0, age))
        return [result for _, result in stored], [_as_bad(p) for p in written.poison]

    def _count_placement(
        self,
        messages: Sequence[UnplacedMessage],
        placed: Placed,
        changes: Sequence[BatchStateChange],
        results: Sequence[ApplyResult],
    ) -> None:
        counter = self._metrics.unplaced_results
        parked = {result.event_id for result in placed.parked}
        on_arrival = {change.event_id for change in placed.on_arrival}
        # An event placed in several batches counts as applied if any of them took it new.
        stored: dict[str, str] = {}
        for change, result in zip(changes, results, strict=True):
            if stored.get(change.event_id) != ApplyResult.APPLIED.value:
                stored[change.event_id] = result.value
        debug = logs_at("debug")
        for item in messages:
            event = item.event
            if event.result is None:
                outcome = "not_terminal"
            elif event.event_id in parked:
                outcome = "parked"
            else:
                outcome = "placed_on_arrival"
            counter.labels(outcome).inc()
            processed = {"parked": "parked", "not_terminal": "ignored"}.get(
                outcome, stored.get(event.event_id, ApplyResult.DUPLICATE.value)
            )
            self._metrics.events_processed.labels(item.message.topic, processed).inc()
            if not debug:
                continue
            with bound_context(correlation_id=clip_id(event.correlation_id)):
                logger.debug(
                    "unplaced_result",
                    outcome=outcome,
                    event_id=clip_id(event.event_id),
                    essay_id=clip_id(event.essay_id),
                    topic=item.message.topic,
                    offset=item.message.offset,
                )
        for change, result in zip(changes, results, strict=True):
            if change.event_id not in on_arrival and result is ApplyResult.APPLIED:
                counter.labels("placed_by_roster").inc()

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
            headers=message.headers,
        )
        self._metrics.dlq_records.labels(message.topic, error.reason.value).inc()
        self._metrics.events_processed.labels(message.topic, "dead_lettered").inc()
        with bound_context(correlation_id=clip_id(error.correlation_id)):
            logger.warning(
                "event_dead_lettered",
                reason=error.reason.value,
                error=clip(error.detail),
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )


def _as_bad(poison: PoisonMessage) -> BadMessage:
    error = UnprocessableEventError(
        DeadLetterReason.PROCESSING_FAILED,
        f"storing failed {poison.attempts} times: {clip_error(poison.error)}",
        poison.item.event.correlation_id,
    )
    return BadMessage(poison.item.message, error)
