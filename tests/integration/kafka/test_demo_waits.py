"""The demo's wait for its events to be consumed: a service that cannot store them ends it."""

import uuid

import pytest
from aiokafka import TopicPartition

from batch_conductor_service.dev.consumed import wait_until_consumed
from batch_conductor_service.dev.store_health import StoreOutageError
from tests.integration.kafka.kafka_support import Publisher


async def test_a_check_that_finds_the_store_down_ends_the_wait(
    kafka_bootstrap: str, producer: Publisher
) -> None:
    topic = f"demo-wait-{uuid.uuid4().hex[:8]}"
    await producer.raw(topic, b"never consumed")
    checks = 0

    async def check() -> None:
        nonlocal checks
        checks += 1
        if checks == 2:
            raise StoreOutageError("the service cannot store events: its store is down: redis")

    # Nobody consumes for this group: without the check, the wait would last its minute.
    with pytest.raises(StoreOutageError):
        await wait_until_consumed(
            kafka_bootstrap,
            f"group-{uuid.uuid4().hex[:8]}",
            {TopicPartition(topic, 0): 1},
            within=60,
            check=check,
            check_every_seconds=0,
        )
    assert checks == 2
