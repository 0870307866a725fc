from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import pytest
import structlog
from dishka import Provider, Scope
from prometheus_client import CollectorRegistry
from quart import Quart
from quart.typing import TestClientProtocol as Client

from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.wiring.app import create_app
from batch_conductor_service.wiring.settings import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def unit_settings(**overrides: object) -> Settings:
    defaults: dict[str, object] = {
        "ENVIRONMENT": "testing",
        "KAFKA_CONSUMER_ENABLED": False,
        "PIPELINES_PATH": REPO_ROOT / "pipelines.yaml",
    }
    return load_settings(**{**defaults, **overrides})


def repository_provider(repository: BatchStateRepositoryProtocol) -> Provider:
    provider = Provider(scope=Scope.APP)
    provider.provide(lambda: repository, provides=BatchStateRepositoryProtocol)
    return provider


AppFactory = Callable[..., Quart]


@pytest.fixture
def make_app() -> AppFactory:
    def factory(
        providers: Sequence[Provider] = (),
        registry: CollectorRegistry | None = None,
        **settings: object,
    ) -> Quart:
        return create_app(unit_settings(**settings), providers=providers, registry=registry)

    return factory


@pytest.fixture
async def client(make_app: AppFactory) -> AsyncIterator[Client]:
    app = make_app()
    async with app.test_app():
        yield app.test_client()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """For a test that calls configure_logging: puts structlog's configuration back after it.
    A logger caches the processors list current at its first use, and capture_logs edits the
    current list in place, so a list left behind by one test would hide a cached logger's
    lines from a later test's capture_logs."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
