"""Tracing through the real consumer: events published to the bundled broker with a
`traceparent` in their envelope's metadata (the platform's convention) or in Kafka headers, the
service on Redis, its spans exported by the SDK's OTLP/HTTP exporter to a receiver on 127.0.0.1
and decoded there with opentelemetry-proto."""

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from quart import Quart
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from batch_conductor_service.dead_letter.reader import read_dead_letters
from batch_conductor_service.dead_letter.replay import plan_replay, replay
from batch_conductor_service.wiring.app import create_app
from common_core.topics import Topic, dlq_topic
from tests.conftest import service_missing
from tests.integration.kafka.kafka_support import Publisher, eventually, kafka_settings
from tests.support import event_factory as ev
from tests.support.otlp_receiver import (
    KIND_CLIENT,
    KIND_CONSUMER,
    STATUS_ERROR,
    OtlpHttpReceiver,
    ReceivedSpan,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
READY = Topic.BATCH_ESSAYS_READY.value
SPELLCHECK = Topic.SPELLCHECK_COMPLETED.value


def new_ids() -> tuple[str, str]:
    return uuid.uuid4().hex, uuid.uuid4().hex[:16]


def traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpHttpReceiver]:
    """The OTLP/HTTP receiver, and the service's environment pointing at it."""
    running = OtlpHttpReceiver().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", running.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    yield running
    running.stop()


@pytest.fixture
async def key_prefix() -> AsyncIterator[str]:
    prefix = f"bcs-trace-{uuid.uuid4().hex[:12]}"
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except (RedisConnectionError, OSError) as exc:
        await client.aclose()
        service_missing(f"Redis at {REDIS_URL} ({exc})")
    yield prefix
    keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await client.unlink(*keys)
    await client.aclose()


def traced_app(bootstrap: str, key_prefix: str) -> Quart:
    settings = kafka_settings(
        bootstrap,
        ENVIRONMENT="production",
        REDIS_URL=REDIS_URL,
        REDIS_KEY_PREFIX=key_prefix,
        KAFKA_MAX_POLL_RECORDS=50,
    )
    return create_app(settings)


def span_of_event(spans: list[ReceivedSpan], event_id: str) -> ReceivedSpan:
    [span] = [s for s in spans if s.attributes.get("messaging.message.id") == event_id]
    return span


def has_spans_of(*event_ids: str) -> Any:
    def accept(spans: list[ReceivedSpan]) -> bool:
        seen = {s.attributes.get("messaging.message.id") for s in spans if s.kind == KIND_CONSUMER}
        return set(event_ids) <= seen and any(s.name == "store fetch" for s in spans)

    return accept


async def test_events_continue_their_producers_traces_and_the_store_write_links_them(
    kafka_bootstrap: str, producer: Publisher, receiver: OtlpHttpReceiver, key_prefix: str
) -> None:
    batch = f"batch-{uuid.uuid4()}"
    (ready_trace, ready_parent), (result_trace, result_parent) = new_ids(), new_ids()
    ready = {
        **ev.ready(batch, ["e1"]),
        "metadata": {"traceparent": traceparent(ready_trace, ready_parent)},
    }
    result = {
        **ev.spellcheck(batch, "e1"),
        "metadata": {"traceparent": traceparent(result_trace, result_parent), "tracestate": "x=1"},
    }
    hostile = {
        **ev.ready(f"batch-{uuid.uuid4()}", ["e9"]),
        "metadata": {"traceparent": "00-" + "zz" * 300, "tracestate": "\u00e9" * 40},
    }
    headers_only = ev.ready(f"batch-{uuid.uuid4()}", ["e8"])
    (header_trace, header_parent) = new_ids()

    app = traced_app(kafka_bootstrap, key_prefix)
    async with app.test_app() as test_app:
        for document in (ready, result, hostile):
            await producer.event(document["event_type"], document)
        await producer._client.send_and_wait(
            READY,
            ev.encode(headers_only),
            partition=0,
            headers=[("traceparent", traceparent(header_trace, header_parent).encode())],
        )
        ids = [d["event_id"] for d in (ready, result, hostile, headers_only)]
        spans = await receiver.until(has_spans_of(*ids))
        # The hostile one was applied like any other, never dead-lettered.
        response = await test_app.test_client().post(
            "/internal/v1/pipelines/define",
            json={"batch_id": batch, "requested_pipeline": "cj_assessment"},
        )
        assert (await response.get_json())["final_pipeline"] == ["cj_assessment"]

    ready_span, result_span = span_of_event(spans, ids[0]), span_of_event(spans, ids[1])
    assert (ready_span.trace_id, ready_span.parent_span_id) == (ready_trace, ready_parent)
    assert (result_span.trace_id, result_span.parent_span_id) == (result_trace, result_parent)
    assert ready_span.attributes["bcs.outcome"] == "applied"
    assert ready_span.attributes["bcs.batch_id"] == batch
    assert ready_span.attributes["messaging.destination.name"] == READY
    hostile_span = span_of_event(spans, ids[2])
    assert hostile_span.parent_span_id == ""
    assert hostile_span.attributes["bcs.outcome"] == "applied"
    header_span = span_of_event(spans, ids[3])
    assert (header_span.trace_id, header_span.parent_span_id) == (header_trace, header_parent)
    # Each event's span is linked from the store write that carried it; no store write is
    # any event's parent, and the Redis commands of a write are its children.
    stores = [s for s in spans if s.name == "store fetch"]
    linked = {link for s in stores for link in s.links}
    for span in (ready_span, result_span, hostile_span, header_span):
        assert (span.trace_id, span.span_id) in linked
        assert span.parent_span_id not in {s.span_id for s in stores}
    store_ids = {s.span_id for s in stores}
    redis_children = [s for s in spans if s.kind == KIND_CLIENT and s.parent_span_id in store_ids]
    assert redis_children
    assert all(s.attributes["db.system"] == "redis" for s in redis_children)
    assert {s.resource["service.name"] for s in spans} == {"batch_conductor_service"}


async def read_with_headers(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    found: list[tuple[bytes, dict[str, bytes]]] = []
    try:
        while batch := await consumer.getmany(timeout_ms=300):
            for records in batch.values():
                found.extend((r.value or b"", dict(r.headers)) for r in records)
        return found
    finally:
        await consumer.stop()


async def test_a_dead_lettered_message_keeps_its_trace_and_its_replay_continues_it(
    kafka_bootstrap: str, producer: Publisher, receiver: OtlpHttpReceiver, key_prefix: str
) -> None:
    marker = uuid.uuid4().hex
    trace_id, parent_id = new_ids()
    carrier = traceparent(trace_id, parent_id).encode()
    # Not JSON: its trace context can only be in its Kafka headers.
    payload = f"not json {marker}".encode()

    app = traced_app(kafka_bootstrap, key_prefix)
    async with app.test_app():
        await producer._client.send_and_wait(
            SPELLCHECK, payload, partition=0, headers=[("traceparent", carrier)]
        )

        async def records() -> list[dict[str, Any]]:
            found = await read_with_headers(kafka_bootstrap, dlq_topic(SPELLCHECK))
            return [
                {**orjson.loads(value), "headers": headers}
                for value, headers in found
                if marker.encode() in value
            ]

        [record] = await eventually(records, lambda found: len(found) == 1)
        assert record["trace_context"] == {"traceparent": carrier.decode()}
        assert record["headers"]["traceparent"] == carrier
        [failed] = [
            s
            for s in await receiver.until(
                lambda spans: any(
                    s.status_code == STATUS_ERROR for s in spans if s.trace_id == trace_id
                )
            )
            if s.trace_id == trace_id and s.kind == KIND_CONSUMER
        ]
        assert failed.parent_span_id == parent_id
        assert "dead_lettered" in failed.events

        entries = [
            e
            for e in await read_dead_letters(kafka_bootstrap, SPELLCHECK)
            if e.record is not None and marker in e.record.original_payload
        ]
        assert await replay(kafka_bootstrap, SPELLCHECK, plan_replay(entries, SPELLCHECK)) == 1
        replayed = [
            headers
            for value, headers in await read_with_headers(kafka_bootstrap, SPELLCHECK)
            if value == payload and "bcs-replay-of" in headers
        ]
        assert [headers["traceparent"] for headers in replayed] == [carrier]

        def twice(spans: list[ReceivedSpan]) -> bool:
            return (
                len([s for s in spans if s.trace_id == trace_id and s.kind == KIND_CONSUMER]) == 2
            )

        processed = [
            s
            for s in await receiver.until(twice)
            if s.trace_id == trace_id and s.kind == KIND_CONSUMER
        ]
    # The replay is processed in the same trace, under the same producer span.
    assert {s.parent_span_id for s in processed} == {parent_id}
