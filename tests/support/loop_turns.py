"""Counts the event loop's turns while a test's code runs, so a test can say how much work the
code does in one turn (the HTTP API shares the loop with the consumer)."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class LoopTurns:
    def __init__(self) -> None:
        self.turn = 0
        self.calls_at: list[int] = []

    def counting(self, function: F) -> F:
        """`function`, noting the turn of each call."""

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls_at.append(self.turn)
            return function(*args, **kwargs)

        return counted  # type: ignore[return-value]

    def most_calls_in_one_turn(self) -> int:
        return max(Counter(self.calls_at).values())


@asynccontextmanager
async def loop_turns() -> AsyncIterator[LoopTurns]:
    turns = LoopTurns()

    async def tick() -> None:
        while True:
            await asyncio.sleep(0)
            turns.turn += 1

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    try:
        yield turns
    finally:
        ticker.cancel()
