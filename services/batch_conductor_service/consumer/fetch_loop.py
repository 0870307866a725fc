"""The background Kafka consumer: fetch a batch, store its effects, commit, repeat.

Offsets are committed only after EventBatchProcessor has stored a batch's effects. When
our own infrastructure fails (state store or dead-letter topic), the consumer seeks back
to the batch's first offsets, backs off and fetches the same messages again. When Kafka
itself fails (fetch, commit, position), the client is closed and a new one joins the group
after a pause; the group resumes from the committed offsets, so nothing stored is lost and a
redelivery is absorbed by idempotency.
"""

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from batch_conductor_service.consumer.backoff import ExponentialBackoff
from batch_conductor_service.consumer.batch_processor import EventBatchProcessor
from batch_conductor_service.consumer.fetched_batch import FetchedBatch, offset_ranges
from batch_conductor_service.consumer.health import ConsumerHealth, ConsumerPhase
from batch_conductor_service.consumer.lag import ConsumerLag
from batch_conductor_service.consumer.offsets import PartitionKey, first_offsets
from batch_conductor_service.errors import DeadLetterUnavailableError, StateStoreUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)

_POLL_TIMEOUT_MS = 500
_STORE_FAILURES = (StateStoreUnavailableError, DeadLetterUnavailableError)
# Of stop()'s budget, the part left for a task that did not stop in time to unwind once cancelled.
_CANCEL_SHARE = 0.25


class EventConsumer:
    def __init__(
        self,
        consumer_factory: Callable[[], AIOKafkaConsumer],
        topics: Sequence[str],
        processor: EventBatchProcessor,
        health: ConsumerHealth,
        metrics: BcsMetrics,
        backoff: ExponentialBackoff,
        max_records: int,
    ) -> None:
        self._factory = consumer_factory
        self._topics = list(topics)
        self._processor = processor
        self._health = health
        self._metrics = metrics
        self._lag = ConsumerLag(metrics)
        self._backoff = backoff
        self._max_records = max_records
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="bcs-kafka-consumer")
        self._task.add_done_callback(self._on_task_done)

    async def stop(self, timeout_seconds: float) -> None:
        """Lets the batch in hand finish and commit, then closes the client; returns within
        about `timeout_seconds` and never raises what ended the task (_on_task_done logs it)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        done, _ = await asyncio.wait({task}, timeout=timeout_seconds * (1 - _CANCEL_SHARE))
        if not done:
            logger.warning("consumer_stop_timed_out", timeout_seconds=timeout_seconds)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=timeout_seconds * _CANCEL_SHARE)
        if not done:
            # Still unwinding: its Kafka client may stay open until the process exits.
            logger.error("consumer_task_abandoned", timeout_seconds=timeout_seconds)
        self._health.stopped()

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            if not self._stopping.is_set():
                self._health.failing(ConsumerPhase.DEAD, "the consumer task was cancelled")
            return
        error = task.exception()
        if error is not None:
            logger.error("consumer_task_died", error=repr(error), exc_info=error)
            self._health.failing(ConsumerPhase.DEAD, repr(error))
        elif not self._stopping.is_set():
            self._health.failing(ConsumerPhase.DEAD, "the consumer loop ended")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            consumer = await self._connect()
            if consumer is None:
                return
            try:
                await self._consume(consumer)
            except KafkaError as exc:
                # Outermost loop: counted, shown in /healthz, retried with a new client.
                self._metrics.consumer_errors.labels("kafka").inc()
                self._health.failing(ConsumerPhase.RECONNECTING, repr(exc))
                logger.warning("consumer_reconnecting", error=repr(exc))
            finally:
                await self._close(consumer)
            if not self._stopping.is_set():
                await self._pause()

    async def _connect(self) -> AIOKafkaConsumer | None:
        while not self._stopping.is_set():
            consumer = self._factory()
            consumer.subscribe(topics=self._topics, listener=self._lag)
            try:
                started = await self._start_unless_stopping(consumer)
            except KafkaError as exc:
                await self._close(consumer)
                self._health.failing(ConsumerPhase.CONNECTING, repr(exc))
                logger.warning("consumer_connect_failed", error=repr(exc))
                await self._pause()
                continue
            if not started:
                # Stopped while joining the group: close what start() had opened.
                await self._close(consumer)
                return None
            logger.info("consumer_started")
            return consumer
        return None

    async def _start_unless_stopping(self, consumer: AIOKafkaConsumer) -> bool:
        """Joining a group can take seconds; a stop (Ctrl-C) must not wait for it."""
        start = asyncio.ensure_future(consumer.start())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({start, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            start.cancel()
            raise
        finally:
            stopping.cancel()
        if start.done():
            start.result()
            return True
        start.cancel()
        with contextlib.suppress(asyncio.CancelledError, KafkaError):
            await start
        return False

    async def _close(self, consumer: AIOKafkaConsumer) -> None:
        self._lag.forget(consumer.assignment())
        try:
            await consumer.stop()
        except KafkaError as exc:
            logger.warning("consumer_close_failed", error=repr(exc))
        else:
            logger.info("consumer_closed")

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            fetched = await consumer.getmany(
                timeout_ms=_POLL_TIMEOUT_MS, max_records=self._max_records
            )
            messages = [m for partition in fetched.values() for m in partition]
            if messages:
                await self._handle(consumer, messages)
            else:
                self._healthy(consumer)
            await self._lag.record(consumer)

    async def _handle(
        self, consumer: AIOKafkaConsumer, messages: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> None:
        batch: FetchedBatch | None = None
        try:
            batch = FetchedBatch.of(messages)
            offsets = await self._processor.process(batch)
        except _STORE_FAILURES as exc:
            trace = _trace(batch, messages)
            await self._retry_later(consumer, messages, trace, "infrastructure", exc)
            return
        except Exception:
            # Not an outage, yet not pinned on a message either (a bug): each message is handled
            # on its own, and one that fails again alone is dead-lettered, so no bug can stall a
            # partition. Only an outage met on the way makes the whole batch wait.
            trace = _trace(batch, messages)
            logger.exception("consumer_batch_failed_unexpectedly", **trace)
            self._metrics.consumer_errors.labels("unexpected").inc()
            try:
                offsets = await self._processor.process_one_by_one(messages)
            except _STORE_FAILURES as outage:
                await self._retry_later(consumer, messages, trace, "infrastructure", outage)
                return
            except Exception as again:
                await self._retry_later(consumer, messages, trace, "unexpected", again)
                return
        await self._commit(consumer, offsets, batch, messages)
        self._healthy(consumer)

    def _healthy(self, consumer: AIOKafkaConsumer) -> None:
        self._backoff.reset()
        self._health.running(len(consumer.assignment()))

    async def _retry_later(
        self,
        consumer: AIOKafkaConsumer,
        messages: Sequence[ConsumerRecord[bytes, bytes]],
        trace: dict[str, object],
        kind: str,
        exc: BaseException,
    ) -> None:
        self._metrics.consumer_errors.labels(kind).inc()
        self._processor.count_retried(messages)
        self._health.failing(ConsumerPhase.RETRYING, repr(exc))
        logger.warning("consumer_batch_will_retry", kind=kind, error=repr(exc), **trace)
        for key, offset in first_offsets(messages).items():
            # A partition revoked meanwhile is resumed by its new owner from the committed offset.
            with contextlib.suppress(IllegalStateError):
                consumer.seek(_tp(key), offset)
        await self._pause()

    async def _commit(
        self,
        consumer: AIOKafkaConsumer,
        offsets: dict[PartitionKey, int],
        batch: FetchedBatch | None,
        messages: Sequence[ConsumerRecord[bytes, bytes]],
    ) -> None:
        try:
            await consumer.commit({_tp(key): offset for key, offset in offsets.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced: the new owner redelivers, and idempotency absorbs it.
            logger.warning("consumer_commit_rejected", error=repr(exc), **_trace(batch, messages))

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self._backoff.next_delay())


def _trace(
    batch: FetchedBatch | None, messages: Sequence[ConsumerRecord[bytes, bytes]]
) -> dict[str, object]:
    # Built only when a line needs it: the batch's summary line already carries it on success.
    return batch.trace() if batch is not None else {"partitions": offset_ranges(messages)}


def _tp(key: PartitionKey) -> TopicPartition:
    return TopicPartition(key.topic, key.partition)
