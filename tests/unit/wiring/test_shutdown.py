import asyncio
from collections.abc import AsyncIterator

import pytest
from dishka import Provider, Scope
from quart.testing.app import LifespanError
from structlog.testing import capture_logs

from batch_conductor_service.consumer.loop import EventConsumer
from batch_conductor_service.wiring.providers import app_container
from batch_conductor_service.wiring.startup import CONSUMER_SHARE
from tests.unit.conftest import AppFactory


class ClientsClosed:
    def __init__(self) -> None:
        self.closed = False


class BrokenConsumer:
    """Stands in for EventConsumer; its stop fails the way a bug would."""

    def __init__(self) -> None:
        self.stop_budgets: list[float] = []

    async def stop(self, timeout_seconds: float) -> None:
        self.stop_budgets.append(timeout_seconds)
        raise RuntimeError("stop failed")


def providers(consumer: BrokenConsumer, clients: ClientsClosed) -> Provider:
    provider = Provider(scope=Scope.APP)

    async def tracked_clients() -> AsyncIterator[ClientsClosed]:
        yield clients
        clients.closed = True

    provider.provide(tracked_clients, provides=ClientsClosed)
    provider.provide(lambda: consumer, provides=EventConsumer)
    return provider


async def test_after_serving_closes_the_clients_even_when_stopping_the_consumer_fails(
    make_app: AppFactory,
) -> None:
    consumer, clients = BrokenConsumer(), ClientsClosed()
    app = make_app(providers=[providers(consumer, clients)], SHUTDOWN_TIMEOUT_SECONDS=5.0)

    with pytest.raises(LifespanError, match="stop failed"):
        async with app.test_app():
            assert await app_container(app).get(ClientsClosed) is clients

    assert clients.closed
    assert consumer.stop_budgets == [pytest.approx(5.0 * CONSUMER_SHARE)]


class StoppedConsumer:
    async def stop(self, timeout_seconds: float) -> None:
        return None


async def test_closing_that_outlasts_the_budget_is_cut_short_and_logged(
    make_app: AppFactory,
) -> None:
    never = asyncio.Event()

    async def hanging_clients() -> AsyncIterator[ClientsClosed]:
        yield ClientsClosed()
        await never.wait()

    provider = Provider(scope=Scope.APP)
    provider.provide(hanging_clients, provides=ClientsClosed)
    provider.provide(StoppedConsumer, provides=EventConsumer)
    app = make_app(providers=[provider], SHUTDOWN_TIMEOUT_SECONDS=0.2)

    with capture_logs() as logs:
        async with app.test_app():
            await app_container(app).get(ClientsClosed)

    [line] = [line for line in logs if line["event"] == "shutdown_close_timed_out"]
    assert line["log_level"] == "error"
    assert line["closing"] == "container"
    assert logs[-1]["event"] == "service_stopped"
