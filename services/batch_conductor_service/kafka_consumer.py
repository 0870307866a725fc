"""The background Kafka consumer: fetch a batch, store its effects, commit, repeat.

Offsets are committed only after EventBatchProcessor has stored a batch's effects. When
our own infrastructure fails (state store or dead-letter topic), the consumer seeks back
to the batch's first offsets, backs off and fetches the same messages again.
"""

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from batch_conductor_service.backoff import ExponentialBackoff
from batch_conductor_service.consumer_health import ConsumerHealth, ConsumerPhase
from batch_conductor_service.errors import DeadLetterUnavailableError, StateStoreUnavailableError
from batch_conductor_service.event_batch_processor import (
    EventBatchProcessor,
    PartitionKey,
    first_offsets,
)
from batch_conductor_service.metrics import BcsMetrics
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)

_POLL_TIMEOUT_MS = 500
_OUR_INFRASTRUCTURE = (StateStoreUnavailableError, DeadLetterUnavailableError, KafkaError)


class EventConsumer:
    def __init__(
        self,
        consumer_factory: Callable[[], AIOKafkaConsumer],
        processor: EventBatchProcessor,
        health: ConsumerHealth,
        metrics: BcsMetrics,
        backoff: ExponentialBackoff,
        max_records: int,
    ) -> None:
        self._factory = consumer_factory
        self._processor = processor
        self._health = health
        self._metrics = metrics
        self._backoff = backoff
        self._max_records = max_records
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="bcs-kafka-consumer")

    async def stop(self, timeout_seconds: float) -> None:
        """Lets the batch in hand finish and commit, then closes the client."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_seconds)
        except TimeoutError:
            logger.warning("consumer_stop_timed_out", timeout_seconds=timeout_seconds)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._health.stopped()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            consumer = await self._connect()
            if consumer is None:
                return
            try:
                await self._consume(consumer)
            finally:
                await consumer.stop()
                logger.info("consumer_closed")

    async def _connect(self) -> AIOKafkaConsumer | None:
        while not self._stopping.is_set():
            consumer = self._factory()
            try:
                await consumer.start()
            except KafkaError as exc:
                await consumer.stop()
                self._health.failing(ConsumerPhase.CONNECTING, repr(exc))
                logger.warning("consumer_connect_failed", error=repr(exc))
                await self._pause()
                continue
            self._backoff.reset()
            self._health.running(len(consumer.assignment()))
            logger.info("consumer_started")
            return consumer
        return None

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            fetched = await consumer.getmany(
                timeout_ms=_POLL_TIMEOUT_MS, max_records=self._max_records
            )
            messages = [m for partition in fetched.values() for m in partition]
            if messages:
                await self._handle(consumer, messages)
            await self._record_lag(consumer)

    async def _handle(
        self, consumer: AIOKafkaConsumer, messages: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> None:
        try:
            offsets = await self._processor.process(messages)
        except _OUR_INFRASTRUCTURE as exc:
            await self._retry_later(consumer, messages, "infrastructure", exc)
            return
        except Exception as exc:
            # A bug must not skip messages nor kill the consumer: it is counted, shown in
            # /healthz, and the same messages are retried after a pause.
            logger.exception("consumer_batch_failed_unexpectedly")
            await self._retry_later(consumer, messages, "unexpected", exc)
            return
        await self._commit(consumer, offsets)
        self._backoff.reset()
        self._health.running(len(consumer.assignment()))

    async def _retry_later(
        self,
        consumer: AIOKafkaConsumer,
        messages: Sequence[ConsumerRecord[bytes, bytes]],
        kind: str,
        exc: BaseException,
    ) -> None:
        self._metrics.consumer_errors.labels(kind).inc()
        self._processor.count_retried(messages)
        self._health.failing(ConsumerPhase.RETRYING, repr(exc))
        logger.warning("consumer_batch_will_retry", kind=kind, error=repr(exc))
        for key, offset in first_offsets(messages).items():
            # A partition revoked meanwhile is resumed by its new owner from the committed offset.
            with contextlib.suppress(IllegalStateError):
                consumer.seek(_tp(key), offset)
        await self._pause()

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[PartitionKey, int]) -> None:
        try:
            await consumer.commit({_tp(key): offset for key, offset in offsets.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced: the new owner redelivers, and idempotency absorbs it.
            logger.warning("consumer_commit_rejected", error=repr(exc))

    async def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            position = await consumer.position(tp)
            self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                max(0, highwater - position)
            )

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self._backoff.next_delay())


def _tp(key: PartitionKey) -> TopicPartition:
    return TopicPartition(key.topic, key.partition)
