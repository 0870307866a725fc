"""Helpers for the Kafka integration tests: settings, app on a given repository, polling."""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from dishka import Provider, Scope, provide
from prometheus_client import CollectorRegistry
from quart import Quart

from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
)
from batch_conductor_service.wiring.app import create_app
from batch_conductor_service.wiring.settings import Settings
from tests.support.event_factory import encode

REPO_ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")


class Publisher:
    """Publishes to partition 0, so "the next event on the same partition" is well defined."""

    def __init__(self, client: AIOKafkaProducer) -> None:
        self._client = client

    async def event(self, topic: str, document: dict[str, Any]) -> None:
        await self.raw(topic, encode(document))

    async def raw(self, topic: str, value: bytes) -> None:
        await self._client.send_and_wait(topic, value, partition=0)


def kafka_settings(bootstrap: str, group_id: str | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "ENVIRONMENT": "testing",
        "PIPELINES_PATH": REPO_ROOT / "pipelines.yaml",
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_CONSUMER_GROUP_ID": group_id or f"bcs-test-{uuid.uuid4()}",
        "KAFKA_RETRY_BACKOFF_INITIAL_SECONDS": 0.05,
        "KAFKA_RETRY_BACKOFF_MAX_SECONDS": 0.5,
        "KAFKA_SESSION_TIMEOUT_SECONDS": 6.0,
        "SHUTDOWN_TIMEOUT_SECONDS": 10.0,
    }
    values.update(overrides)
    return Settings(**values)


def repository_provider(repository: BatchStateRepositoryProtocol) -> Provider:
    class _Fixed(Provider):
        scope = Scope.APP

        @provide
        def repo(self) -> BatchStateRepositoryProtocol:
            return repository

    return _Fixed()


def build_app(
    settings: Settings,
    repository: BatchStateRepositoryProtocol | None = None,
    registry: CollectorRegistry | None = None,
) -> Quart:
    repo = repository or InMemoryBatchStateRepository(ttl_seconds=3600)
    return create_app(settings, registry=registry, providers=[repository_provider(repo)])


async def eventually(
    probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], within_seconds: float = 30.0
) -> T:
    """Polls until `accept` holds, with a bounded deadline instead of a fixed sleep."""
    deadline = time.monotonic() + within_seconds
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"condition not met within {within_seconds}s; last value: {value!r}"
            )
        await asyncio.sleep(0.1)


async def read_topic(bootstrap: str, topic: str) -> list[bytes]:
    """Everything on `topic` now, read without a group."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=300)
            if not batch:
                return values
            values.extend(m.value for ms in batch.values() for m in ms if m.value is not None)
    finally:
        await consumer.stop()
