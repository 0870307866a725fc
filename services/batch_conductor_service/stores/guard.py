"""The one guard every store call goes through: it says whether a failure is an outage of the
store (StateStoreUnavailableError: nobody's fault, retry later) or not (anything else reaches
the caller as it is: a bug, or a message the consumer isolates as poison), counts failures, and
fails fast behind a circuit breaker while the store is down.

After `failure_threshold` outages in a row the breaker opens: calls fail at once until
`reset_seconds` have passed; then one call goes through as a probe (the others keep failing
fast) and its outcome closes or reopens it. A timeout alone does not count towards opening it
unless the store also fails a quick ping: one slow batch must not make every other batch's
request fail fast.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from huleedu_service_libs.log_bounds import clip_error
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)
T = TypeVar("T")


class Failure(StrEnum):
    """What a store's failure means, as its classifier (`classify`) says."""

    OUTAGE = "outage"
    # An outage too, unless the store still answers a ping: then it was one slow call.
    TIMEOUT = "timeout"


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class StoreGuard:
    def __init__(
        self,
        store: str,
        classify: Callable[[BaseException], Failure | None],
        metrics: BcsMetrics,
        *,
        failure_threshold: int = 5,
        reset_seconds: float = 10.0,
        ping: Callable[[], Awaitable[object]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.reset_seconds = reset_seconds
        self._classify = classify
        self._metrics = metrics
        self._threshold = failure_threshold
        self._ping = ping
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        metrics.circuit_state.labels(store).set(0)

    @property
    def state(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self._remaining_open() <= 0:
            return CircuitState.HALF_OPEN
        return self._state

    async def run(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        is_probe = self._admit()
        try:
            result = await call()
        except StateStoreUnavailableError as exc:
            # Raised by a store this one wraps (a rebuild reading PostgreSQL): its own guard
            # counted it; ours only lets it through.
            if exc.store == self.store:
                await self._record_outage(operation, Failure.OUTAGE)
            raise
        except Exception as exc:
            failure = self._classify(exc)
            if failure is None:
                raise
            outage = StateStoreUnavailableError(self.store, clip_error(exc), self.reset_seconds)
            await self._record_outage(operation, failure)
            raise outage from exc
        finally:
            # Whatever ended the probe (even a bug or a cancellation), the next call may probe.
            if is_probe:
                self._probe_in_flight = False
        self._failures = 0
        self._set_state(CircuitState.CLOSED)
        return result

    def _admit(self) -> bool:
        if self._state is CircuitState.CLOSED:
            return False
        remaining = self._remaining_open()
        if remaining > 0:
            raise StateStoreUnavailableError(self.store, "circuit breaker open", remaining)
        if self._probe_in_flight:
            raise StateStoreUnavailableError(
                self.store, "circuit breaker half-open, probe in flight", self.reset_seconds
            )
        self._probe_in_flight = True
        self._set_state(CircuitState.HALF_OPEN)
        return True

    async def _record_outage(self, operation: str, failure: Failure) -> None:
        self._metrics.repository_errors.labels(self.store, operation).inc()
        if failure is Failure.TIMEOUT and await self._answers_ping():
            return
        self._failures += 1
        if self._state is CircuitState.HALF_OPEN or self._failures >= self._threshold:
            self._opened_at = self._clock()
            self._set_state(CircuitState.OPEN)

    async def _answers_ping(self) -> bool:
        if self._ping is None:
            return False
        try:
            await asyncio.wait_for(self._ping(), 1.0)
        except Exception:
            return False
        return True

    def _remaining_open(self) -> float:
        if self._state is not CircuitState.OPEN:
            return 0.0
        return self._opened_at + self.reset_seconds - self._clock()

    def _set_state(self, state: CircuitState) -> None:
        if state is self._state:
            return
        self._state = state
        # Half-open still fails fast for all but the one probe.
        self._metrics.circuit_state.labels(self.store).set(0 if state is CircuitState.CLOSED else 1)
        logger.warning("circuit_breaker_state_changed", store=self.store, state=state.value)
