"""What /healthz says about the Kafka consumer; updated by the consumer loop as it runs.

A consumer that keeps failing is degraded while it retries; once it has made no progress for
longer than `stall_seconds` it is unhealthy, so an orchestrator replaces the replica.
"""

import time
from collections.abc import Callable
from enum import StrEnum

from batch_conductor_service.health import ComponentHealth, HealthState


class ConsumerPhase(StrEnum):
    DISABLED = "disabled"
    STARTING = "starting"
    CONNECTING = "connecting"
    RUNNING = "running"
    RETRYING = "retrying"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    # The consumer task ended without being asked to: nothing is consumed until a restart.
    DEAD = "dead"


_HEALTHY = {ConsumerPhase.DISABLED, ConsumerPhase.RUNNING}


class ConsumerHealth:
    health_name = "kafka_consumer"

    def __init__(
        self,
        enabled: bool,
        stall_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.phase = ConsumerPhase.STARTING if enabled else ConsumerPhase.DISABLED
        self.error: str | None = None
        self.consecutive_failures = 0
        self.assigned_partitions = 0
        self._stall_seconds = stall_seconds
        self._clock = clock
        # When the current run of failures began; None while the consumer makes progress.
        self._failing_since: float | None = None

    def running(self, assigned_partitions: int) -> None:
        self.phase = ConsumerPhase.RUNNING
        self.error = None
        self.consecutive_failures = 0
        self.assigned_partitions = assigned_partitions
        self._failing_since = None

    def failing(self, phase: ConsumerPhase, error: str) -> None:
        self.phase = phase
        self.error = error
        self.consecutive_failures += 1
        if self._failing_since is None:
            self._failing_since = self._clock()

    def stalled_for(self) -> float:
        """Seconds since the consumer last made progress, 0 while it does."""
        return 0.0 if self._failing_since is None else self._clock() - self._failing_since

    def stopped(self) -> None:
        self.phase = ConsumerPhase.STOPPED

    async def health(self) -> dict[str, ComponentHealth]:
        state = _state_of(self.phase)
        detail: dict[str, object] = {"state": self.phase.value}
        if self.phase is ConsumerPhase.RUNNING:
            detail["assigned_partitions"] = self.assigned_partitions
        if self.error is not None and state is not HealthState.OK:
            detail["error"] = self.error
            detail["consecutive_failures"] = self.consecutive_failures
            stalled = self.stalled_for()
            detail["stalled_seconds"] = round(stalled, 1)
            if stalled > self._stall_seconds:
                detail["stall_limit_seconds"] = self._stall_seconds
                state = HealthState.UNHEALTHY
        return {self.health_name: ComponentHealth(state, detail)}


def _state_of(phase: ConsumerPhase) -> HealthState:
    if phase in _HEALTHY:
        return HealthState.OK
    # Unhealthy (503) so an orchestrator restarts a replica whose consumer cannot come back.
    return HealthState.UNHEALTHY if phase is ConsumerPhase.DEAD else HealthState.DEGRADED
