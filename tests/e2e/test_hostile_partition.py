"""Every kind of poison found by attack, between good messages on one partition, against the
service as a process on Redis (one server, and a Redis Cluster) + PostgreSQL and the bundled
broker: the good messages are
applied, every poison message is in the DLQ with its reason, and the group's offset reaches the
end of the partition (nothing stalls)."""

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from redis.asyncio import Redis

from batch_conductor_service.dev.embedded_broker import EmbeddedBroker, free_port
from common_core.events import DeadLetterRecord
from common_core.topics import Topic, dlq_topic
from tests.conftest import service_missing
from tests.e2e.conftest import RunningService, start_service, stop_if_running
from tests.e2e.test_operator_tools import until
from tests.integration.kafka.kafka_support import read_topic
from tests.integration.stores.conftest import redis_cluster  # noqa: F401 (a fixture)
from tests.integration.stores.own_redis_cluster import OwnRedisCluster
from tests.support import event_factory as ev

TOPIC = Topic.BATCH_PHASE_OUTCOME.value
REDIS_URL = os.environ.get("BCS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get("BCS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def outcome(batch_id: str, **envelope: Any) -> dict[str, Any]:
    document = ev.phase_outcome(batch_id, "spellcheck", "COMPLETED_SUCCESSFULLY", ["e1"], [])
    document.update(envelope)
    return document


def with_data(**data: Any) -> dict[str, Any]:
    document = outcome("poison")
    document["data"].update(data)
    return document


def raw(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


# (name, message bytes, the dead-letter reason it must get). Every kind the issue reproduced.
POISON: list[tuple[str, bytes, str]] = [
    (
        "timestamp overflowing west of UTC",
        raw(outcome("p", event_timestamp="9999-12-31T23:59:59-10:00")),
        "schema_validation_failed",
    ),
    (
        "timestamp overflowing east of UTC",
        raw(outcome("p", event_timestamp="0001-01-01T00:00:00+10:00")),
        "schema_validation_failed",
    ),
    ("batch id of 3 KB", raw(with_data(batch_id="b" * 3000)), "schema_validation_failed"),
    ("essay id of 3 KB", raw(with_data(failed_essay_ids=["e" * 3000])), "schema_validation_failed"),
    ("phase name of 3 KB", raw(with_data(phase_name="s" * 3000)), "schema_validation_failed"),
    ("batch id holding NUL", raw(with_data(batch_id="b\x00")), "schema_validation_failed"),
    (
        "correlation id of 20 KB",
        raw(outcome("p", correlation_id="c" * 20_000)),
        "schema_validation_failed",
    ),
    ("200 KB of control bytes", b"\x01" * 200_000, "invalid_json"),
    ("invalid JSON near 1 MB", b'{"event_id": "' + b"x" * 900_000, "invalid_json"),
    (
        "stamped in year 2999",
        raw(outcome("p", event_timestamp="2999-01-01T00:00:00Z")),
        "timestamp_in_future",
    ),
]


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    try:
        running = EmbeddedBroker.start(preferred_port=0)
    except (ImportError, RuntimeError, OSError) as exc:
        service_missing(f"the Tansu broker ({exc})")
    yield running.bootstrap_servers
    running.stop()


@pytest.fixture(params=["redis", "redis-cluster"])
def durable_service(
    broker: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[RunningService, str]]:
    schema = f"bcs_e2e_{uuid.uuid4().hex[:10]}"
    group = f"bcs-e2e-{uuid.uuid4().hex[:8]}"
    prefix = f"bcs-e2e-{uuid.uuid4().hex[:8]}"
    redis: dict[str, str] = {"BCS_REDIS_URL": REDIS_URL}
    if request.param == "redis-cluster":
        cluster: OwnRedisCluster = request.getfixturevalue("redis_cluster")
        redis = {"BCS_REDIS_URL": cluster.url, "BCS_REDIS_CLUSTER": "true"}
    running = start_service(
        [sys.executable, "-m", "batch_conductor_service"],
        {
            "BCS_KAFKA_BOOTSTRAP_SERVERS": broker,
            "BCS_KAFKA_CONSUMER_GROUP_ID": group,
            "BCS_KAFKA_RETRY_BACKOFF_INITIAL_SECONDS": "0.1",
            **redis,
            "BCS_REDIS_KEY_PREFIX": prefix,
            "BCS_DATABASE_URL": DATABASE_URL,
            "BCS_DATABASE_SCHEMA": schema,
        },
        free_port(),
        tmp_path / "service.log",
    )
    yield running, group
    stop_if_running(running)
    asyncio.run(drop_schema(schema))
    if request.param == "redis":  # the cluster's keys go with the cluster
        asyncio.run(remove_keys(prefix))


async def remove_keys(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()


async def drop_schema(schema: str) -> None:
    connection = await asyncpg.connect(DATABASE_URL)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


async def publish(bootstrap: str, values: list[bytes]) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        offsets = []
        for value in values:
            sent = await producer.send_and_wait(TOPIC, value, partition=0)
            offsets.append(sent.offset)
        return offsets
    finally:
        await producer.stop()


async def committed(bootstrap: str, group: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return int(await consumer.committed(TopicPartition(TOPIC, 0)) or 0)
    finally:
        await consumer.stop()


def test_poison_of_every_kind_never_stalls_the_partition_on_redis_and_postgresql(
    broker: str, durable_service: tuple[RunningService, str]
) -> None:
    service, group = durable_service
    run = uuid.uuid4().hex[:6]
    # A good message before, between and after the poison; one batch id that once broke the
    # cluster hash tag is good now.
    good_batches = [f"}}good-{run}-0", *(f"good-{run}-{i}" for i in range(1, len(POISON) + 1))]
    values: list[bytes] = []
    for index, batch in enumerate(good_batches):
        values.append(raw(outcome(batch)))
        if index < len(POISON):
            values.append(POISON[index][1])
    offsets = asyncio.run(publish(broker, values))
    end = offsets[-1] + 1

    def every_good_batch_done() -> bool:
        for batch in good_batches:
            status, body = service.post_json(
                "/internal/v1/pipelines/define",
                {"batch_id": batch, "requested_pipeline": "spellcheck"},
            )
            assert status == 200, body
            if body["final_pipeline"] != []:
                return False
        return True

    until(every_good_batch_done, "every good message applied")
    until(lambda: asyncio.run(committed(broker, group)) >= end, "offsets committed to the end")

    records = [
        DeadLetterRecord.model_validate_json(value)
        for value in asyncio.run(read_topic(broker, dlq_topic(TOPIC)))
    ]
    by_offset = {r.original_offset: r for r in records if r.original_offset in set(offsets)}
    poison_offsets = offsets[1::2]
    assert len(poison_offsets) == len(POISON)
    for offset, (name, value, reason) in zip(poison_offsets, POISON, strict=True):
        record = by_offset.get(offset)
        assert record is not None, f"{name} was not dead-lettered"
        assert record.reason == reason, name
        assert record.original_payload_length == len(value), name
    # The good ones were not.
    assert not set(offsets[0::2]) & set(by_offset)
    status, _, body = service.request("GET", "/healthz")
    assert status == 200, body
