"""Sends dead-letter records to `<original topic>.DLQ` with an aiokafka producer."""

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from batch_conductor_service.dead_letter.bounded_record import bounded_record
from batch_conductor_service.dead_letter.replay import replayed_from
from batch_conductor_service.errors import DeadLetterUnavailableError
from common_core.topics import dlq_topic
from huleedu_service_libs.log_bounds import clip
from huleedu_service_libs.logging_utils import get_logger
from huleedu_service_libs.trace_context import NO_TRACE, TraceCarrier, as_headers

logger = get_logger(__name__)

# If the broker refuses even a record of BCS_DLQ_MAX_RECORD_BYTES (its limit was set lower),
# the record is sent once more cut to this, which any broker takes.
_SMALL_RECORD_BYTES = 16 * 1024


class KafkaDlqProducer:
    """Starts its producer on first use, so an unreachable broker never blocks start-up."""

    def __init__(
        self,
        producer_factory: Callable[[], AIOKafkaProducer],
        service_name: str,
        send_timeout_seconds: float,
        max_record_bytes: int = 512 * 1024,
    ) -> None:
        self._max_bytes = max_record_bytes
        self._factory = producer_factory
        self._service_name = service_name
        self._timeout = send_timeout_seconds
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def send(
        self,
        *,
        original_topic: str,
        payload: bytes,
        reason: str,
        error: str,
        partition: int | None = None,
        offset: int | None = None,
        correlation_id: str | None = None,
        headers: Sequence[tuple[str, bytes | None]] | None = None,
        trace_context: TraceCarrier = NO_TRACE,
    ) -> bool:
        """Whether a record was appended. `headers`: the failed message's own, which say
        whether it was replayed from a dead-letter record; then that record stands for it, and
        none is appended. `trace_context`: the failed message's processing, kept in the record
        and sent as the record's own headers too."""
        origin = replayed_from(headers, original_topic)
        if origin is not None:
            self._replay_failed(original_topic, origin, reason, error, partition, offset)
            return False
        failed_at = datetime.now(UTC)

        def record(max_bytes: int) -> bytes:
            return bounded_record(
                original_topic=original_topic,
                payload=payload,
                reason=reason,
                error=error,
                failing_service=self._service_name,
                failed_at=failed_at,
                partition=partition,
                offset=offset,
                correlation_id=correlation_id,
                max_bytes=max_bytes,
                trace_context=trace_context,
            )

        topic, record_headers = dlq_topic(original_topic), as_headers(trace_context)
        try:
            try:
                await self._send(topic, record(self._max_bytes), record_headers)
            except MessageSizeTooLargeError:
                await self._send(topic, record(_SMALL_RECORD_BYTES), record_headers)
        except (KafkaError, TimeoutError) as exc:
            raise DeadLetterUnavailableError(f"dead-letter send failed: {exc!r}") from exc
        return True

    def _replay_failed(
        self,
        topic: str,
        origin: str,
        reason: str,
        error: str,
        partition: int | None,
        offset: int | None,
    ) -> None:
        logger.warning(
            "replayed_event_failed_again",
            dead_letter_record=clip(origin),
            reason=clip(reason),
            error=clip(error),
            topic=topic,
            partition=partition,
            offset=offset,
        )

    async def _send(self, topic: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        producer = await self._started()
        await asyncio.wait_for(
            producer.send_and_wait(topic, value, headers=headers or None), self._timeout
        )

    async def close(self) -> None:
        async with self._lock:
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = self._factory()
                try:
                    await asyncio.wait_for(producer.start(), self._timeout)
                except BaseException:
                    # A producer whose start failed cannot be started again; the next send
                    # builds a new one.
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer
