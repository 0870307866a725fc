"""Waits until the service's consumer group has committed past given offsets: the service
commits an offset only once the message's effects are stored, so the events are applied then.
Watching Kafka, not polling the API, keeps the demo's HTTP calls (and so /metrics) exact."""

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition


async def wait_until_consumed(
    bootstrap_servers: str,
    group_id: str,
    ends: dict[TopicPartition, int],
    within: float = 60,
    *,
    check: Callable[[], Awaitable[None]] | None = None,
    check_every_seconds: float = 1.0,
) -> bool:
    """True once the group's committed offset reaches `ends` on every partition, False if it
    has not within `within` seconds. While waiting, `check` runs every `check_every_seconds`:
    what it raises (the service cannot consume, say) ends the wait."""
    # No subscription, so this client never joins the group or disturbs its assignment.
    watcher = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group_id, enable_auto_commit=False
    )
    await watcher.start()
    try:
        deadline = time.monotonic() + within
        next_check = time.monotonic() + check_every_seconds
        while time.monotonic() < deadline:
            committed = {tp: await watcher.committed(tp) for tp in ends}
            if all((committed[tp] or 0) >= end for tp, end in ends.items()):
                return True
            if check is not None and time.monotonic() >= next_check:
                await check()
                next_check = time.monotonic() + check_every_seconds
            await asyncio.sleep(0.2)
        return False
    finally:
        await watcher.stop()
