from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

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
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For a test that calls configure_logging: puts structlog's configuration back after it,
    and caches no logger meanwhile. A cached logger keeps the processors list current at its
    first use, and capture_logs edits the current list in place, so a logger first used under
    this test's configuration would hide its lines from any later test's capture_logs (which
    test runs later depends on how the tests are spread over xdist's workers)."""
    saved = structlog.get_config()
    configure = structlog.configure

    def configure_without_caching(**options: Any) -> None:
        configure(**{**options, "cache_logger_on_first_use": False})

    monkeypatch.setattr(structlog, "configure", configure_without_caching)
    yield
    configure(**saved)
