"""A per-store circuit breaker: after repeated store failures, fail fast instead of timing out."""

import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

from batch_conductor_service.errors import StateStoreUnavailableError

T = TypeVar("T")


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive StateStoreUnavailableError of its own store; anything else (a bug, or
    another store failing inside the call) neither opens nor closes it.

    Once open, calls raise at once until `reset_seconds` have passed; then one call is let
    through as a probe (the others keep failing fast) and its outcome closes or reopens it.
    """

    def __init__(
        self,
        store: str,
        failure_threshold: int,
        reset_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        self.store = store
        self._threshold = failure_threshold
        self._reset_seconds = reset_seconds
        self._clock = clock
        self._on_state_change = on_state_change
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self._remaining_open() <= 0:
            return CircuitState.HALF_OPEN
        return self._state

    @property
    def reset_seconds(self) -> float:
        return self._reset_seconds

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        is_probe = self._admit()
        try:
            result = await operation()
        except StateStoreUnavailableError as exc:
            if exc.store == self.store:
                self._record_failure()
            raise
        finally:
            # Whatever ended the probe (even a bug or a cancellation), the next call may probe.
            if is_probe:
                self._probe_in_flight = False
        self._record_success()
        return result

    def _admit(self) -> bool:
        if self._state is CircuitState.CLOSED:
            return False
        remaining = self._remaining_open()
        if remaining > 0:
            raise StateStoreUnavailableError(self.store, "circuit breaker open", remaining)
        if self._probe_in_flight:
            raise StateStoreUnavailableError(
                self.store, "circuit breaker half-open, probe in flight", self._reset_seconds
            )
        self._probe_in_flight = True
        self._set_state(CircuitState.HALF_OPEN)
        return True

    def _record_failure(self) -> None:
        self._failures += 1
        if self._state is CircuitState.HALF_OPEN or self._failures >= self._threshold:
            self._opened_at = self._clock()
            self._set_state(CircuitState.OPEN)

    def _record_success(self) -> None:
        self._failures = 0
        self._set_state(CircuitState.CLOSED)

    def _remaining_open(self) -> float:
        if self._state is not CircuitState.OPEN:
            return 0.0
        return self._opened_at + self._reset_seconds - self._clock()

    def _set_state(self, state: CircuitState) -> None:
        if state is not self._state:
            self._state = state
            if self._on_state_change is not None:
                self._on_state_change(state)
