"""The one guard: outages become StateStoreUnavailableError behind a circuit breaker; anything
else reaches the caller as it is; one slow call does not open the breaker."""

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.guard import CircuitState, Failure, StoreGuard


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def classify(exc: BaseException) -> Failure | None:
    if isinstance(exc, ConnectionError):
        return Failure.OUTAGE
    return Failure.TIMEOUT if isinstance(exc, TimeoutError) else None


async def store_down() -> None:
    raise ConnectionError("connection refused")


async def store_slow() -> None:
    raise TimeoutError("no reply in time")


async def store_up() -> str:
    return "answer"


def make(clock: Clock, ping_answers: bool | None = None) -> StoreGuard:
    async def ping() -> None:
        if not ping_answers:
            raise ConnectionError("down")

    return StoreGuard(
        "redis",
        classify,
        BcsMetrics(CollectorRegistry()),
        failure_threshold=3,
        reset_seconds=10.0,
        ping=None if ping_answers is None else ping,
        clock=clock,
    )


async def fail(guard: StoreGuard, times: int, call: object = store_down) -> None:
    for _ in range(times):
        with pytest.raises(StateStoreUnavailableError):
            await guard.run("read", call)  # type: ignore[arg-type]


async def test_an_outage_is_raised_as_unavailable_naming_the_store_and_the_cause() -> None:
    with pytest.raises(StateStoreUnavailableError, match="redis unavailable: Connection"):
        await make(Clock()).run("read", store_down)


async def test_anything_else_reaches_the_caller_as_it_is() -> None:
    async def bug() -> None:
        raise KeyError("not an outage")

    guard = make(Clock())
    for _ in range(5):
        with pytest.raises(KeyError):
            await guard.run("read", bug)
    assert guard.state is CircuitState.CLOSED


async def test_it_opens_after_the_threshold_of_consecutive_outages() -> None:
    guard = make(Clock())
    await fail(guard, 2)
    assert guard.state is CircuitState.CLOSED
    await fail(guard, 1)
    assert guard.state is CircuitState.OPEN


async def test_a_success_resets_the_count_of_outages() -> None:
    guard = make(Clock())
    await fail(guard, 2)
    assert await guard.run("read", store_up) == "answer"
    await fail(guard, 2)
    assert guard.state is CircuitState.CLOSED


async def test_while_open_it_fails_fast_with_the_remaining_open_time() -> None:
    clock = Clock()
    guard = make(clock)
    await fail(guard, 3)
    clock.now += 4
    called = False

    async def operation() -> None:
        nonlocal called
        called = True

    with pytest.raises(StateStoreUnavailableError) as raised:
        await guard.run("read", operation)
    assert not called
    assert raised.value.retry_after_seconds == pytest.approx(6.0)


async def test_a_successful_probe_after_the_reset_time_closes_it() -> None:
    clock = Clock()
    guard = make(clock)
    await fail(guard, 3)
    clock.now += 10
    assert guard.state is CircuitState.HALF_OPEN
    assert await guard.run("read", store_up) == "answer"
    assert guard.state is CircuitState.CLOSED


async def test_a_failed_probe_opens_it_again_for_a_full_period() -> None:
    clock = Clock()
    guard = make(clock)
    await fail(guard, 3)
    clock.now += 10
    await fail(guard, 1)
    assert guard.state is CircuitState.OPEN
    with pytest.raises(StateStoreUnavailableError) as raised:
        await guard.run("read", store_up)
    assert raised.value.retry_after_seconds == pytest.approx(10.0)


async def test_only_one_probe_runs_at_a_time() -> None:
    clock = Clock()
    guard = make(clock)
    await fail(guard, 3)
    clock.now += 10
    release = asyncio.Event()

    async def slow_probe() -> str:
        await release.wait()
        return "probe"

    probe = asyncio.create_task(guard.run("read", slow_probe))
    await asyncio.sleep(0)
    with pytest.raises(StateStoreUnavailableError, match="probe in flight"):
        await guard.run("read", store_up)
    release.set()
    assert await probe == "probe"
    assert await guard.run("read", store_up) == "answer"


async def test_slow_calls_of_a_store_that_answers_a_ping_never_open_it() -> None:
    # One batch's slow read must not make every other batch's request fail fast.
    guard = make(Clock(), ping_answers=True)
    await fail(guard, 10, store_slow)
    assert guard.state is CircuitState.CLOSED


async def test_slow_calls_of_a_store_that_fails_its_ping_open_it() -> None:
    guard = make(Clock(), ping_answers=False)
    await fail(guard, 3, store_slow)
    assert guard.state is CircuitState.OPEN


async def test_an_outage_another_store_reports_through_this_one_is_not_counted_here() -> None:
    async def other_store_down() -> None:
        raise StateStoreUnavailableError("postgresql", "down")

    guard = make(Clock())
    await fail(guard, 5, other_store_down)
    assert guard.state is CircuitState.CLOSED
