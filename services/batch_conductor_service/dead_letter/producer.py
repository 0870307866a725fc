"""Sends dead-letter records to `<original topic>.DLQ` with an aiokafka producer."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from batch_conductor_service.errors import DeadLetterUnavailableError
from common_core.events import DeadLetterRecord
from common_core.topics import dlq_topic


class KafkaDlqProducer:
    """Starts its producer on first use, so an unreachable broker never blocks start-up."""

    def __init__(
        self,
        producer_factory: Callable[[], AIOKafkaProducer],
        service_name: str,
        send_timeout_seconds: float,
    ) -> None:
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
    ) -> None:
        text, encoding = DeadLetterRecord.encode_payload(payload)
        record = DeadLetterRecord(
            original_payload=text,
            original_payload_encoding=encoding,
            original_topic=original_topic,
            original_partition=partition,
            original_offset=offset,
            reason=reason,
            error=error,
            failing_service=self._service_name,
            failed_at=datetime.now(UTC),
            correlation_id=correlation_id,
        )
        value = record.model_dump_json().encode()
        try:
            producer = await self._started()
            await asyncio.wait_for(
                producer.send_and_wait(dlq_topic(original_topic), value), self._timeout
            )
        except (KafkaError, TimeoutError) as exc:
            raise DeadLetterUnavailableError(f"dead-letter send failed: {exc!r}") from exc

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
