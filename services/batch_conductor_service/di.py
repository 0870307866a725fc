"""Dishka providers, grouped by layer. The one container is built in startup_setup."""

from collections.abc import AsyncIterator

from dishka import Provider, Scope, from_context, provide
from prometheus_client import CollectorRegistry

from batch_conductor_service.config import Settings
from batch_conductor_service.health import (
    ComponentHealth,
    HealthReporters,
    HealthState,
)
from batch_conductor_service.implementations.mock_batch_state_repository import (
    InMemoryBatchStateRepository,
)
from batch_conductor_service.implementations.pipeline_resolution_service_impl import (
    PipelineResolutionService,
)
from batch_conductor_service.implementations.state_store_factory import open_state_store
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.pipeline_definitions import StepGraph
from batch_conductor_service.protocols import (
    BatchStateRepositoryProtocol,
    PipelineResolutionServiceProtocol,
)


class CoreProvider(Provider):
    scope = Scope.APP

    settings = from_context(provides=Settings)
    graph = from_context(provides=StepGraph)
    registry = from_context(provides=CollectorRegistry)
    metrics = from_context(provides=BcsMetrics)


class RepositoryProvider(Provider):
    scope = Scope.APP

    @provide
    async def repository(
        self, settings: Settings, metrics: BcsMetrics
    ) -> AsyncIterator[BatchStateRepositoryProtocol]:
        if settings.uses_memory_repository:
            yield InMemoryBatchStateRepository(ttl_seconds=settings.REDIS_TTL_SECONDS)
            return
        async with open_state_store(settings, metrics) as repository:
            yield repository


class ServiceProvider(Provider):
    scope = Scope.APP

    resolution = provide(PipelineResolutionService, provides=PipelineResolutionServiceProtocol)


class PipelineConfigHealth:
    health_name = "pipeline_config"

    def __init__(self, graph: StepGraph) -> None:
        self._graph = graph

    async def health(self) -> dict[str, ComponentHealth]:
        detail = {"pipelines": sorted(self._graph.pipelines), "steps": list(self._graph.order)}
        return {self.health_name: ComponentHealth(HealthState.OK, detail)}


class HealthProvider(Provider):
    scope = Scope.APP

    @provide
    def reporters(
        self, graph: StepGraph, repository: BatchStateRepositoryProtocol
    ) -> HealthReporters:
        return HealthReporters(PipelineConfigHealth(graph), repository)


def default_providers() -> list[Provider]:
    return [CoreProvider(), RepositoryProvider(), ServiceProvider(), HealthProvider()]
