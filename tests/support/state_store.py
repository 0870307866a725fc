"""The production state store as the real container opens it, for tests that need only that."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dishka import Provider, Scope, from_context, make_async_container

from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.wiring.settings import Settings
from batch_conductor_service.wiring.store_providers import store_providers


class _Given(Provider):
    scope = Scope.APP

    settings = from_context(provides=Settings)
    metrics = from_context(provides=BcsMetrics)


@asynccontextmanager
async def open_state_store(
    settings: Settings, metrics: BcsMetrics
) -> AsyncIterator[BatchStateRepositoryProtocol]:
    container = make_async_container(
        _Given(), *store_providers(settings), context={Settings: settings, BcsMetrics: metrics}
    )
    try:
        yield await container.get(BatchStateRepositoryProtocol)
    finally:
        await container.close()
