"""Health reporting shared by the repositories, the consumer, the pipeline config and /healthz."""

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from batch_conductor_service.domain.step_graph import StepGraph


class HealthState(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


_SEVERITY = {HealthState.OK: 0, HealthState.DEGRADED: 1, HealthState.UNHEALTHY: 2}


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    state: HealthState
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"status": self.state.value, **self.detail}


def overall(states: list[HealthState]) -> HealthState:
    return max(states, key=_SEVERITY.__getitem__, default=HealthState.OK)


class HealthReporter(Protocol):
    async def health(self) -> dict[str, ComponentHealth]: ...


class HealthReporters:
    """The components /healthz asks; a reporter that hangs counts as unhealthy, not as a hang."""

    def __init__(self, *reporters: HealthReporter, timeout_seconds: float = 2.0) -> None:
        self._reporters = reporters
        self._timeout = timeout_seconds

    async def collect(self) -> dict[str, ComponentHealth]:
        results = await asyncio.gather(*(self._ask(r) for r in self._reporters))
        merged: dict[str, ComponentHealth] = {}
        for result in results:
            merged.update(result)
        return merged

    async def _ask(self, reporter: HealthReporter) -> dict[str, ComponentHealth]:
        try:
            return await asyncio.wait_for(reporter.health(), self._timeout)
        except TimeoutError:
            name = getattr(reporter, "health_name", type(reporter).__name__)
            timed_out = ComponentHealth(HealthState.UNHEALTHY, {"error": "health check timed out"})
            return {name: timed_out}


class Serving:
    """Whether the replica still takes new work: from the stop signal on, it only finishes what
    it has, and /readyz says so, so that a load balancer sends the next request elsewhere."""

    def __init__(self) -> None:
        self.shutting_down = False

    def begin_shutdown(self) -> None:
        self.shutting_down = True


class PipelineConfigHealth:
    health_name = "pipeline_config"

    def __init__(self, graph: StepGraph) -> None:
        self._graph = graph

    async def health(self) -> dict[str, ComponentHealth]:
        detail = {"pipelines": sorted(self._graph.pipelines), "steps": list(self._graph.order)}
        return {self.health_name: ComponentHealth(HealthState.OK, detail)}
