"""Dead-letters failed /define requests in the background and at a bounded rate.

The caller's 500 neither waits for Kafka nor fails on it, and a client that can make requests
fail cannot flood the resolution DLQ: beyond the rate, failures are counted, not dead-lettered.
The record itself is size-bounded by the producer.
"""

import asyncio
import time
from collections.abc import Callable

from batch_conductor_service.errors import DeadLetterUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import DlqProducerProtocol
from common_core.events import DeadLetterReason
from common_core.topics import Topic
from huleedu_service_libs.logging_utils import get_logger
from huleedu_service_libs.trace_context import NO_TRACE, TraceCarrier

logger = get_logger(__name__)


class FailedResolutionDeadLetters:
    """A token bucket of `per_minute` records, refilled evenly, and the sends in flight."""

    def __init__(
        self,
        dead_letters: DlqProducerProtocol,
        metrics: BcsMetrics,
        *,
        per_minute: int,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._capacity = float(per_minute)
        self._tokens = float(per_minute)
        self._refill_per_second = per_minute / 60.0
        self._timeout = timeout_seconds
        self._clock = clock
        self._refilled_at = clock()
        self._in_flight: set[asyncio.Task[None]] = set()

    def submit(
        self,
        body: bytes,
        error: str,
        correlation_id: str | None,
        trace_context: TraceCarrier = NO_TRACE,
    ) -> bool:
        """Starts sending one record unless the rate is used up; never waits."""
        if not self._take_token():
            self._metrics.resolution_dead_letters_dropped.inc()
            return False
        task = asyncio.create_task(self._send(body, error, correlation_id, trace_context))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return True

    async def close(self) -> None:
        """Waits for the sends in flight, each already bounded by its timeout."""
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _take_token(self) -> bool:
        now = self._clock()
        elapsed = max(0.0, now - self._refilled_at)
        self._tokens = min(self._capacity, self._tokens + elapsed * self._refill_per_second)
        self._refilled_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    async def _send(
        self, body: bytes, error: str, correlation_id: str | None, trace_context: TraceCarrier
    ) -> None:
        try:
            await asyncio.wait_for(
                self._dead_letters.send(
                    original_topic=Topic.PIPELINE_RESOLUTION.value,
                    payload=body,
                    reason=DeadLetterReason.RESOLUTION_FAILED.value,
                    error=error,
                    correlation_id=correlation_id,
                    trace_context=trace_context,
                ),
                self._timeout,
            )
        except (DeadLetterUnavailableError, TimeoutError) as dlq_error:
            logger.warning("resolution_dead_letter_failed", error=repr(dlq_error))
        else:
            logger.info("resolution_dead_lettered")
