"""What /healthz says about the Kafka consumer; updated by the consumer loop as it runs."""

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

    def __init__(self, enabled: bool) -> None:
        self.phase = ConsumerPhase.STARTING if enabled else ConsumerPhase.DISABLED
        self.error: str | None = None
        self.consecutive_failures = 0
        self.assigned_partitions = 0

    def running(self, assigned_partitions: int) -> None:
        self.phase = ConsumerPhase.RUNNING
        self.error = None
        self.consecutive_failures = 0
        self.assigned_partitions = assigned_partitions

    def failing(self, phase: ConsumerPhase, error: str) -> None:
        self.phase = phase
        self.error = error
        self.consecutive_failures += 1

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
        return {self.health_name: ComponentHealth(state, detail)}


def _state_of(phase: ConsumerPhase) -> HealthState:
    if phase in _HEALTHY:
        return HealthState.OK
    # Unhealthy (503) so an orchestrator restarts a replica whose consumer cannot come back.
    return HealthState.UNHEALTHY if phase is ConsumerPhase.DEAD else HealthState.DEGRADED
