import asyncio

import pytest

from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.stores.circuit_breaker import CircuitBreaker, CircuitState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def store_down() -> None:
    raise StateStoreUnavailableError("redis", "connection refused")


async def store_up() -> str:
    return "answer"


def make(clock: Clock, changes: list[CircuitState] | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        "redis", 3, 10.0, clock=clock, on_state_change=None if changes is None else changes.append
    )


async def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(StateStoreUnavailableError):
            await breaker.call(store_down)


async def test_it_opens_after_the_threshold_of_consecutive_failures() -> None:
    changes: list[CircuitState] = []
    breaker = make(Clock(), changes)
    await fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    await fail(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert changes == [CircuitState.OPEN]


async def test_a_success_resets_the_count_of_failures() -> None:
    breaker = make(Clock())
    await fail(breaker, 2)
    assert await breaker.call(store_up) == "answer"
    await fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED


async def test_while_open_it_fails_fast_with_the_remaining_open_time() -> None:
    clock = Clock()
    breaker = make(clock)
    await fail(breaker, 3)
    clock.now += 4
    called = False

    async def operation() -> None:
        nonlocal called
        called = True

    with pytest.raises(StateStoreUnavailableError) as raised:
        await breaker.call(operation)
    assert not called
    assert raised.value.retry_after_seconds == pytest.approx(6.0)


async def test_a_successful_probe_after_the_reset_time_closes_it() -> None:
    clock = Clock()
    changes: list[CircuitState] = []
    breaker = make(clock, changes)
    await fail(breaker, 3)
    clock.now += 10
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(store_up) == "answer"
    assert breaker.state is CircuitState.CLOSED
    assert changes == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]


async def test_a_failed_probe_opens_it_again_for_a_full_period() -> None:
    clock = Clock()
    breaker = make(clock)
    await fail(breaker, 3)
    clock.now += 10
    await fail(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(StateStoreUnavailableError) as raised:
        await breaker.call(store_up)
    assert raised.value.retry_after_seconds == pytest.approx(10.0)


async def test_only_one_probe_runs_at_a_time() -> None:
    clock = Clock()
    breaker = make(clock)
    await fail(breaker, 3)
    clock.now += 10
    release = asyncio.Event()

    async def slow_probe() -> str:
        await release.wait()
        return "probe"

    probe = asyncio.create_task(breaker.call(slow_probe))
    await asyncio.sleep(0)
    with pytest.raises(StateStoreUnavailableError, match="probe in flight"):
        await breaker.call(store_up)
    release.set()
    assert await probe == "probe"
    assert await breaker.call(store_up) == "answer"


async def test_a_bug_or_another_store_failing_does_not_count() -> None:
    breaker = make(Clock())

    async def bug() -> None:
        raise KeyError("not a store outage")

    async def other_store_down() -> None:
        raise StateStoreUnavailableError("postgresql", "down")

    for _ in range(5):
        with pytest.raises(KeyError):
            await breaker.call(bug)
        with pytest.raises(StateStoreUnavailableError):
            await breaker.call(other_store_down)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0
