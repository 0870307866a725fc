import asyncio
from collections.abc import AsyncIterator

import pytest
from dishka import Provider, Scope
from quart.testing.app import LifespanError
from structlog.testing import capture_logs

from batch_conductor_service.consumer.loop import EventConsumer
from batch_conductor_service.wiring.providers import app_container
from batch_conductor_service.wiring.shutdown import CONSUMER_SHARE, ShutdownBudget
from tests.unit.conftest import AppFactory


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_consumer_gets_its_share_and_closing_gets_what_is_left() -> None:
    clock = Clock()
    budget = ShutdownBudget(10.0, clock=clock)

    clock.now += 4.0

    assert budget.for_consumer == pytest.approx(10.0 * CONSUMER_SHARE)
    assert budget.remaining() == pytest.approx(6.0)
    clock.now += 7.0
    assert budget.remaining() == 0.0


async def test_a_close_that_finishes_in_time_is_awaited() -> None:
    closed: list[bool] = []

    async def close() -> None:
        closed.append(True)

    await ShutdownBudget(10.0).close_within(close, "clients")

    assert closed == [True]


async def test_a_close_that_outlasts_the_budget_is_cut_short_and_logged() -> None:
    clock = Clock()
    budget = ShutdownBudget(10.0, clock=clock)
    clock.now += 10.0
    never = asyncio.Event()

    with capture_logs() as logs:
        await budget.close_within(never.wait, "clients")

    [line] = logs
    assert line["event"] == "shutdown_close_timed_out"
    assert line["log_level"] == "error"
    assert line["closing"] == "clients"


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
