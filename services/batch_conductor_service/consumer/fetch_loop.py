"""The background Kafka consumer: fetch a batch, store its effects, commit, repeat.

Offsets are committed only after EventBatchProcessor has stored a batch's effects. When
our own infrastructure fails (state store or dead-letter topic), the consumer seeks back
to the batch's first offsets, backs off and fetches the same messages again. When Kafka
itself fails (fetch, commit, position), the client is closed and a new one joins the group
after a pause; the group resumes from the committed offsets, so nothing stored is lost and a
redelivery is absorbed by idempotency.

While a fetch is stored (mostly a wait for Redis and PostgreSQL), the next one is taken from
what the client has buffered and translated; it is stored only after the one before it is
committed, and when that one must be fetched again, so is the one read ahead.
"""

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from batch_conductor_service.consumer.backoff import ExponentialBackoff
from batch_conductor_service.consumer.batch_processor import EventBatchProcessor
from batch_conductor_service.consumer.client import close_client, start_unless_stopping
from batch_conductor_service.consumer.fetched_batch import Fetch
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
                await close_client(consumer, self._lag)
            if not self._stopping.is_set():
                await self._pause()

    async def _connect(self) -> AIOKafkaConsumer | None:
        while not self._stopping.is_set():
            consumer = self._factory()
            consumer.subscribe(topics=self._topics, listener=self._lag)
            try:
                started = await start_unless_stopping(consumer, self._stopping)
            except KafkaError as exc:
                await close_client(consumer, self._lag)
                self._health.failing(ConsumerPhase.CONNECTING, repr(exc))
                logger.warning("consumer_connect_failed", error=repr(exc))
                await self._pause()
                continue
            if not started:
                # Stopped while joining the group: close what start() had opened.
                await close_client(consumer, self._lag)
                return None
            logger.info("consumer_started")
            return consumer
        return None

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        ahead: Fetch | None = None
        while not self._stopping.is_set():
            if ahead is None:
                fetch = await Fetch.read(consumer, _POLL_TIMEOUT_MS, self._max_records)
            else:
                fetch = ahead
            if fetch.messages:
                ahead = await self._handle_reading_ahead(consumer, fetch)
            else:
                ahead = None
                self._healthy(consumer)
            await self._lag.record(consumer)

    async def _handle_reading_ahead(self, consumer: AIOKafkaConsumer, fetch: Fetch) -> Fetch | None:
        """Stores and commits the fetch; meanwhile the next one is read from what the client
        has buffered and translated, since storing is mostly waiting for the store. Returns
        that next fetch, or None when this one must be fetched again (then so must it)."""
        handling = asyncio.ensure_future(self._handle(consumer, fetch))
        try:
            ahead = None
            if not self._stopping.is_set():
                ahead = await Fetch.read(consumer, 0, self._max_records)
        except Exception:
            # A Kafka error reading ahead: the fetch in hand is still stored and committed.
            await handling
            raise
        except BaseException:
            handling.cancel()
            raise
        retry = await handling
        if retry is not None:
            await self._retry_later(consumer, fetch, ahead, retry)
            return None
        return ahead if ahead is not None and ahead.messages else None

    async def _handle(self, consumer: AIOKafkaConsumer, fetch: Fetch) -> "_Retry | None":
        batch = fetch.batch
        try:
            if batch is None:
                raise fetch.translation_error or RuntimeError("the fetch was not translated")
            offsets = await self._processor.process(batch)
        except _STORE_FAILURES as exc:
            return _Retry("infrastructure", exc, fetch.trace())
        except Exception:
            # Not an outage, yet not pinned on a message either (a bug): each message is handled
            # on its own, and one that fails again alone is dead-lettered, so no bug can stall a
            # partition. Only an outage met on the way makes the whole batch wait.
            trace = fetch.trace()
            logger.exception("consumer_batch_failed_unexpectedly", **trace)
            self._metrics.consumer_errors.labels("unexpected").inc()
            try:
                offsets = await self._processor.process_one_by_one(fetch.messages)
            except _STORE_FAILURES as outage:
                return _Retry("infrastructure", outage, trace)
            except Exception as again:
                return _Retry("unexpected", again, trace)
        await self._commit(consumer, offsets, fetch)
        self._healthy(consumer)
        return None

    def _healthy(self, consumer: AIOKafkaConsumer) -> None:
        self._backoff.reset()
        self._health.running(len(consumer.assignment()))

    async def _retry_later(
        self, consumer: AIOKafkaConsumer, fetch: Fetch, ahead: Fetch | None, retry: "_Retry"
    ) -> None:
        self._metrics.consumer_errors.labels(retry.kind).inc()
        self._processor.count_retried(fetch.messages)
        self._health.failing(ConsumerPhase.RETRYING, repr(retry.error))
        logger.warning(
            "consumer_batch_will_retry", kind=retry.kind, error=repr(retry.error), **retry.trace
        )
        # The fetch read ahead goes back too: its messages were taken from the client's buffer.
        read_ahead = ahead.messages if ahead is not None else []
        for key, offset in first_offsets([*fetch.messages, *read_ahead]).items():
            # A partition revoked meanwhile is resumed by its new owner from the committed offset.
            with contextlib.suppress(IllegalStateError):
                consumer.seek(_tp(key), offset)
        await self._pause()

    async def _commit(
        self, consumer: AIOKafkaConsumer, offsets: dict[PartitionKey, int], fetch: Fetch
    ) -> None:
        try:
            await consumer.commit({_tp(key): offset for key, offset in offsets.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced: the new owner redelivers, and idempotency absorbs it.
            logger.warning("consumer_commit_rejected", error=repr(exc), **fetch.trace())

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self._backoff.next_delay())


@dataclass(frozen=True, slots=True)
class _Retry:
    """Why a fetch must be fetched and stored again after a pause."""

    kind: str
    error: BaseException
    trace: dict[str, object]


def _tp(key: PartitionKey) -> TopicPartition:
    return TopicPartition(key.topic, key.partition)
