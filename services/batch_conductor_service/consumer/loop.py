"""The background Kafka consumer: the pipeline's `consume_once`, over and over, with what keeps
it going when something fails.

- An outage of our own infrastructure (a store, the dead-letter topic): the fetch was sought
  back; wait (exponential backoff with jitter) and read it again.
- Kafka itself failing (fetch, commit, the group): close the client, and a new one joins the
  group after a pause; the group resumes from the committed offsets, so nothing is lost and a
  redelivery is absorbed by idempotency.
Anything else is the pipeline's to pin on a message (pipeline.py).
"""

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_random_exponential,
)

from batch_conductor_service.consumer.broker_contact import BrokerContact
from batch_conductor_service.consumer.health import ConsumerHealth, ConsumerPhase
from batch_conductor_service.consumer.lag import ConsumerLag
from batch_conductor_service.consumer.pipeline import OUTAGES, EventPipeline
from batch_conductor_service.metrics import BcsMetrics
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)

# Of stop()'s budget, the part left for a task that did not stop in time to unwind once cancelled.
_CANCEL_SHARE = 0.25


class EventConsumer:
    def __init__(
        self,
        consumer_factory: Callable[[], AIOKafkaConsumer],
        topics: Sequence[str],
        pipeline: EventPipeline,
        health: ConsumerHealth,
        metrics: BcsMetrics,
        *,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        silence_seconds: float = 15.0,
    ) -> None:
        self._factory = consumer_factory
        self._topics = list(topics)
        self._pipeline = pipeline
        self._health = health
        self._metrics = metrics
        self._lag = ConsumerLag(metrics)
        self._contact = BrokerContact(health, silence_seconds)
        # Exponential with full jitter: replicas that failed together do not retry together.
        self._wait = wait_random_exponential(
            multiplier=backoff_initial_seconds, max=backoff_max_seconds
        )
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="bcs-kafka-consumer")
        self._task.add_done_callback(self._on_task_done)

    async def stop(self, timeout_seconds: float) -> None:
        """Lets the fetch in hand finish and commit, then closes the client; returns within
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
            try:
                consumer: AIOKafkaConsumer | None = await self._retrying(
                    KafkaError, ConsumerPhase.CONNECTING
                )(self._join)
            except KafkaError:
                return  # stopping while it could not connect
            if consumer is None:
                return
            # Beside the loop, not in it: a silent broker fails no call the loop makes.
            watch = asyncio.create_task(self._contact.watch(consumer), name="bcs-broker-contact")
            try:
                await self._consume(consumer)
            except KafkaError as exc:
                # Counted, shown in /healthz; a new client joins the group.
                self._metrics.consumer_errors.labels("kafka").inc()
                self._health.failing(ConsumerPhase.RECONNECTING, repr(exc))
                logger.warning("consumer_reconnecting", error=repr(exc))
            finally:
                await _cancel(watch)
                await self._close(consumer)

    async def _join(self) -> AIOKafkaConsumer | None:
        """A client in the group; None when stopped while joining (which can take seconds, and
        a stop, Ctrl-C, must not wait for it)."""
        consumer = self._factory()
        consumer.subscribe(topics=self._topics, listener=self._lag)
        start = asyncio.ensure_future(consumer.start())
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({start, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not start.done():
            start.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await start
            await self._close(consumer)
            return None
        try:
            start.result()
        except KafkaError:
            await self._close(consumer)
            raise
        logger.info("consumer_started")
        return consumer

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        retrying = self._retrying(OUTAGES, ConsumerPhase.RETRYING)
        while not self._stopping.is_set():
            try:
                await retrying(self._pipeline.consume_once, consumer)
            except OUTAGES:
                return  # stopping while the store was down: nothing committed, nothing lost
            self._health.running(len(consumer.assignment()))
            await self._lag.record(consumer)

    def _retrying(
        self, failures: type[BaseException] | tuple[type[BaseException], ...], phase: ConsumerPhase
    ) -> AsyncRetrying:
        """Retries on `failures` with exponential backoff and jitter until it succeeds or the
        consumer stops; each wait is shown in /healthz and counted."""

        def waiting(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            kind = "kafka" if phase is ConsumerPhase.CONNECTING else "infrastructure"
            self._metrics.consumer_errors.labels(kind).inc()
            self._health.failing(phase, repr(error))
            logger.warning("consumer_will_retry", phase=phase.value, error=repr(error))

        return AsyncRetrying(
            retry=retry_if_exception_type(failures),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=waiting,
            stop=lambda _: self._stopping.is_set(),
            reraise=True,
        )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _close(self, consumer: AIOKafkaConsumer) -> None:
        self._lag.forget(consumer.assignment())
        try:
            await consumer.stop()
        except KafkaError as exc:
            logger.warning("consumer_close_failed", error=repr(exc))
        else:
            logger.info("consumer_closed")


async def _cancel(watch: asyncio.Task[None]) -> None:
    watch.cancel()
    (ended,) = await asyncio.gather(watch, return_exceptions=True)
    if not isinstance(ended, asyncio.CancelledError):
        # A bug in the watch: the broker's silence was no longer measured, so health showed
        # the broker unreachable meanwhile (the safe side).
        logger.error("broker_watch_failed", error=repr(ended))
