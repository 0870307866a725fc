from typing import Any

import pytest

from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
)
from batch_conductor_service.wiring.providers import app_container, default_providers
from tests.unit.conftest import AppFactory, unit_settings


def provided_types() -> list[Any]:
    types: list[Any] = []
    for provider in default_providers(unit_settings()):
        types.extend(factory.provides.type_hint for factory in provider.factories)
        types.extend(var.provides.type_hint for var in provider.context_vars)
    return types


def test_the_container_provides_the_service_seams() -> None:
    assert BatchStateRepositoryProtocol in provided_types()


@pytest.mark.parametrize("provided", provided_types(), ids=lambda t: getattr(t, "__name__", str(t)))
async def test_every_provided_type_resolves_from_the_real_container(
    make_app: AppFactory, provided: Any
) -> None:
    app = make_app()
    async with app.test_app():
        assert await app_container(app).get(provided) is not None


@pytest.mark.parametrize(
    "settings",
    [{"ENVIRONMENT": "testing"}, {"ENVIRONMENT": "production", "USE_MOCK_REPOSITORY": True}],
)
async def test_memory_repository_is_selected_by_environment_or_switch(
    make_app: AppFactory, settings: dict[str, object]
) -> None:
    app = make_app(**settings)
    async with app.test_app():
        repository = await app_container(app).get(BatchStateRepositoryProtocol)
    assert isinstance(repository, InMemoryBatchStateRepository)


async def test_routes_and_background_work_share_one_repository(make_app: AppFactory) -> None:
    app = make_app()
    async with app.test_app():
        container = app_container(app)
        first = await container.get(BatchStateRepositoryProtocol)
        async with container() as request_scope:
            assert await request_scope.get(BatchStateRepositoryProtocol) is first
