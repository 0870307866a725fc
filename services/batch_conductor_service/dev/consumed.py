"""Waits until the service's consumer group has committed past given offsets: the service
commits an offset only once the message's effects are stored, so the events are applied then.
Watching Kafka, not polling the API, keeps the demo's HTTP calls (and so /metrics) exact."""

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition


async def wait_until_consumed(
    bootstrap_servers: str, group_id: str, ends: dict[TopicPartition, int], within: float = 60
) -> bool:
    """True once the group's committed offset reaches `ends` on every partition, False if it
    has not within `within` seconds."""
    # No subscription, so this client never joins the group or disturbs its assignment.
    watcher = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group_id, enable_auto_commit=False
    )
    await watcher.start()
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            committed = {tp: await watcher.committed(tp) for tp in ends}
            if all((committed[tp] or 0) >= end for tp, end in ends.items()):
                return True
            await asyncio.sleep(0.2)
        return False
    finally:
        await watcher.stop()
