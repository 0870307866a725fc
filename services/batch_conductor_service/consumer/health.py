"""What /healthz says about the Kafka consumer; updated by the consumer loop as it runs.

A consumer that keeps failing is degraded while it retries; once it has made no progress for
longer than `stall_seconds` it is unhealthy, so an orchestrator replaces the replica.

A broker that stops answering makes nothing fail: aiokafka's fetcher swallows its connection
errors and time-outs, and `getmany` just returns nothing. So a running consumer whose broker
has not answered (a fetch, a metadata request, the join) for longer than `silence_seconds` is
reported `broker_unreachable` (degraded); its silence counts as a stall, so the stall rule
applies to it too. `broker_contact.py` tells this class when the broker last answered.
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
    # Running, but the broker has not answered for longer than the silence limit.
    BROKER_UNREACHABLE = "broker_unreachable"
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
        silence_seconds: float = 15.0,
    ) -> None:
        self.phase = ConsumerPhase.STARTING if enabled else ConsumerPhase.DISABLED
        self.error: str | None = None
        self.consecutive_failures = 0
        self.assigned_partitions = 0
        self._stall_seconds = stall_seconds
        self._silence_seconds = silence_seconds
        self._clock = clock
        # When the current run of failures began; None while the consumer makes progress.
        self._failing_since: float | None = None
        # When the broker last answered the current client; None before a client has joined.
        self._last_contact: float | None = None

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

    def heard_from_broker(self, seconds_ago: float = 0.0) -> None:
        """The broker answered `seconds_ago` (a fetch's time is known after the fact)."""
        heard = self._clock() - max(0.0, seconds_ago)
        if self._last_contact is None or heard > self._last_contact:
            self._last_contact = heard

    def broker_silence(self) -> float:
        """Seconds since the broker last answered the current client; 0 before one joined."""
        return 0.0 if self._last_contact is None else max(0.0, self._clock() - self._last_contact)

    def reported_phase(self) -> ConsumerPhase:
        """The phase as /healthz and the metrics show it: a running consumer whose broker has
        been silent too long is not running."""
        if self.phase is ConsumerPhase.RUNNING and self.broker_silence() > self._silence_seconds:
            return ConsumerPhase.BROKER_UNREACHABLE
        return self.phase

    def stalled_for(self) -> float:
        """Seconds since the consumer last made progress, 0 while it does."""
        if self._failing_since is not None:
            return self._clock() - self._failing_since
        if self.reported_phase() is ConsumerPhase.BROKER_UNREACHABLE:
            return self.broker_silence()
        return 0.0

    def stopped(self) -> None:
        self.phase = ConsumerPhase.STOPPED

    async def health(self) -> dict[str, ComponentHealth]:
        phase = self.reported_phase()
        state = _state_of(phase)
        detail: dict[str, object] = {"state": phase.value}
        if phase in (ConsumerPhase.RUNNING, ConsumerPhase.BROKER_UNREACHABLE):
            detail["assigned_partitions"] = self.assigned_partitions
        if phase is ConsumerPhase.BROKER_UNREACHABLE:
            silence = self.broker_silence()
            detail["error"] = f"the Kafka broker has not answered for {silence:.1f} s"
            detail["broker_silent_seconds"] = round(silence, 1)
            detail["silence_limit_seconds"] = self._silence_seconds
        elif self.error is not None and state is not HealthState.OK:
            detail["error"] = self.error
            detail["consecutive_failures"] = self.consecutive_failures
        else:
            return {self.health_name: ComponentHealth(state, detail)}
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
