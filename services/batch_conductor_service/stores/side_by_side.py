"""Store operations run side by side, every one finished before any failure is raised."""

import asyncio
from collections.abc import Awaitable
from typing import Any


async def all_finished(
    *operations: Awaitable[Any], outages: tuple[type[BaseException], ...]
) -> list[Any]:
    """Their results, in order. Waits for every operation, so that no write is left running
    when one fails; then raises the first failure, an outage (what the caller retries on)
    ahead of anything else."""
    done = await asyncio.gather(*operations, return_exceptions=True)
    failures = [d for d in done if isinstance(d, BaseException)]
    for failure in failures:
        if isinstance(failure, outages):
            raise failure
    if failures:
        raise failures[0]
    return list(done)
