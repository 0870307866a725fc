"""One time budget (SHUTDOWN_TIMEOUT_SECONDS) for everything after serving stops."""

import asyncio
import time
from collections.abc import Awaitable, Callable

from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)

# The consumer's stop commits the batch in hand and leaves the group; closing the clients
# (Redis, PostgreSQL, the DLQ producer) gets the rest, and at least what the consumer left.
CONSUMER_SHARE = 0.6


class ShutdownBudget:
    def __init__(self, total_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._deadline = clock() + total_seconds
        self.for_consumer = total_seconds * CONSUMER_SHARE

    def remaining(self) -> float:
        return max(0.0, self._deadline - self._clock())

    async def close_within(self, close: Callable[[], Awaitable[None]], what: str) -> None:
        """Runs `close` in what is left of the budget; cut short, it says so instead of hanging."""
        seconds = self.remaining()
        try:
            await asyncio.wait_for(close(), seconds)
        except TimeoutError:
            # Whatever `close` had not reached yet is left open until the process exits.
            logger.error("shutdown_close_timed_out", closing=what, seconds=round(seconds, 3))
