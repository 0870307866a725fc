import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from batch_conductor_service.dead_letter.producer import KafkaDlqProducer
from batch_conductor_service.dead_letter.replay import (
    REPLAY_HEADER,
    replay_header,
    replayed_from,
)
from batch_conductor_service.errors import DeadLetterUnavailableError
from common_core.events import DeadLetterRecord
from common_core.topics import dlq_topic

TOPIC = "huleedu.els.batch.essays.ready.v1"


class FakeProducer:
    """Stands in for AIOKafkaProducer: records start, stop and what was sent."""

    def __init__(
        self,
        *,
        start_error: BaseException | None = None,
        send_error: BaseException | None = None,
        hang_on: str | None = None,
    ) -> None:
        self.start_error = start_error
        self.send_error = send_error
        self.hang_on = hang_on
        self.starts = 0
        self.stops = 0
        self.sent: list[tuple[str, bytes]] = []
        self.headers: list[list[tuple[str, bytes]] | None] = []

    async def start(self) -> None:
        self.starts += 1
        if self.hang_on == "start":
            await asyncio.Event().wait()
        if self.start_error is not None:
            raise self.start_error

    async def stop(self) -> None:
        self.stops += 1

    async def send_and_wait(
        self, topic: str, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        if self.hang_on == "send":
            await asyncio.Event().wait()
        if self.send_error is not None:
            raise self.send_error
        self.sent.append((topic, value))
        self.headers.append(headers)


class Factory:
    """Hands out the given producers in order, then fresh working ones."""

    def __init__(self, *producers: FakeProducer) -> None:
        self._queue = list(producers)
        self.built: list[FakeProducer] = []

    def __call__(self) -> Any:
        producer = self._queue.pop(0) if self._queue else FakeProducer()
        self.built.append(producer)
        return producer


def dlq(factory: Factory, timeout: float = 5.0) -> KafkaDlqProducer:
    return KafkaDlqProducer(factory, "batch_conductor_service", timeout)


async def send(producer: KafkaDlqProducer, payload: bytes = b'{"x": 1}', **kw: Any) -> bool:
    return await producer.send(
        original_topic=kw.pop("original_topic", TOPIC),
        payload=payload,
        reason=kw.pop("reason", "invalid_json"),
        error=kw.pop("error", "unexpected end of data"),
        **kw,
    )


async def test_the_record_goes_to_the_dlq_topic_with_everything_needed_to_replay() -> None:
    factory = Factory()
    producer = dlq(factory)
    before = datetime.now(UTC)

    await send(
        producer,
        b'{"not json": ',
        reason="invalid_json",
        error="unexpected end of data",
        partition=2,
        offset=41,
        correlation_id="corr-1",
    )

    [(topic, value)] = factory.built[0].sent
    assert topic == f"{TOPIC}.DLQ"
    raw = orjson.loads(value)
    assert raw["original_payload"] == '{"not json": '
    assert raw["original_payload_encoding"] == "utf-8"
    assert raw["original_topic"] == TOPIC
    assert raw["original_partition"] == 2
    assert raw["original_offset"] == 41
    assert raw["reason"] == "invalid_json"
    assert raw["error"] == "unexpected end of data"
    assert raw["failing_service"] == "batch_conductor_service"
    assert raw["correlation_id"] == "corr-1"
    failed_at = datetime.fromisoformat(raw["failed_at"])
    assert failed_at.utcoffset() == timedelta(0)
    assert before <= failed_at <= datetime.now(UTC)


async def test_the_record_keeps_the_trace_context_and_sends_it_as_headers_too() -> None:
    factory = Factory()
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    carrier = {"traceparent": traceparent, "tracestate": "vendor=v1"}

    await send(dlq(factory), trace_context=carrier)

    [(_, value)] = factory.built[0].sent
    assert orjson.loads(value)["trace_context"] == carrier
    assert factory.built[0].headers == [
        [("traceparent", traceparent.encode()), ("tracestate", b"vendor=v1")]
    ]


async def test_a_record_without_trace_context_says_so_and_has_no_headers() -> None:
    factory = Factory()

    await send(dlq(factory))

    [(_, value)] = factory.built[0].sent
    assert orjson.loads(value)["trace_context"] is None
    assert factory.built[0].headers == [None]


async def test_partition_offset_and_correlation_id_are_null_when_not_given() -> None:
    factory = Factory()

    await send(dlq(factory), original_topic="huleedu.bcs.pipeline.resolution.v1")

    [(topic, value)] = factory.built[0].sent
    assert topic == "huleedu.bcs.pipeline.resolution.v1.DLQ"
    raw = orjson.loads(value)
    assert raw["original_partition"] is None
    assert raw["original_offset"] is None
    assert raw["correlation_id"] is None


async def test_a_payload_that_is_not_utf8_travels_as_base64_of_the_same_bytes() -> None:
    factory = Factory()
    payload = b"\xff\xfe\x00binary\x80"

    await send(dlq(factory), payload)

    [(_, value)] = factory.built[0].sent
    record = DeadLetterRecord.model_validate_json(value)
    assert record.original_payload_encoding == "base64"
    assert record.original_payload == "//4AYmluYXJ5gA=="
    assert record.payload_bytes() == payload


async def test_the_producer_is_not_built_until_the_first_send() -> None:
    factory = Factory()

    dlq(factory)

    assert factory.built == []


async def test_the_producer_is_started_once_and_reused_for_later_sends() -> None:
    factory = Factory()
    producer = dlq(factory)

    await send(producer)
    await send(producer)

    assert len(factory.built) == 1
    assert factory.built[0].starts == 1
    assert len(factory.built[0].sent) == 2


async def test_concurrent_first_sends_start_a_single_producer() -> None:
    factory = Factory()
    producer = dlq(factory)

    await asyncio.gather(*(send(producer, offset=i) for i in range(5)))

    assert len(factory.built) == 1
    assert factory.built[0].starts == 1
    assert len(factory.built[0].sent) == 5


async def test_close_stops_the_started_producer_and_a_later_send_builds_a_new_one() -> None:
    factory = Factory()
    producer = dlq(factory)
    await send(producer)

    await producer.close()

    assert factory.built[0].stops == 1
    await send(producer)
    assert len(factory.built) == 2
    assert factory.built[1].sent


async def test_close_without_any_send_builds_nothing() -> None:
    factory = Factory()

    await dlq(factory).close()

    assert factory.built == []


@pytest.mark.parametrize(
    "error", [KafkaTimeoutError(), KafkaConnectionError("broker gone")], ids=repr
)
async def test_a_kafka_error_on_send_raises_dead_letter_unavailable(error: Exception) -> None:
    factory = Factory(FakeProducer(send_error=error))

    with pytest.raises(DeadLetterUnavailableError) as raised:
        await send(dlq(factory))

    assert raised.value.__cause__ is error


async def test_a_send_that_does_not_finish_in_time_raises_dead_letter_unavailable() -> None:
    factory = Factory(FakeProducer(hang_on="send"))

    with pytest.raises(DeadLetterUnavailableError):
        await send(dlq(factory, timeout=0.01))


async def test_a_failed_start_is_stopped_and_the_next_send_builds_a_new_producer() -> None:
    broken = FakeProducer(start_error=KafkaConnectionError("no broker"))
    factory = Factory(broken)
    producer = dlq(factory)

    with pytest.raises(DeadLetterUnavailableError):
        await send(producer)

    assert broken.stops == 1
    assert broken.sent == []
    await send(producer)
    assert len(factory.built) == 2
    assert len(factory.built[1].sent) == 1


async def test_a_start_that_does_not_finish_in_time_raises_dead_letter_unavailable() -> None:
    hanging = FakeProducer(hang_on="start")
    factory = Factory(hanging)

    with pytest.raises(DeadLetterUnavailableError):
        await send(dlq(factory, timeout=0.01))

    assert hanging.stops == 1


class SmallBroker(FakeProducer):
    """A broker whose message.max.bytes is below BCS_DLQ_MAX_RECORD_BYTES."""

    async def send_and_wait(
        self, topic: str, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        if len(value) > 20_000:
            raise MessageSizeTooLargeError()
        self.sent.append((topic, value))


async def test_a_record_the_broker_refuses_as_too_large_is_sent_again_cut_small() -> None:
    factory = Factory(SmallBroker())
    producer = KafkaDlqProducer(factory, "batch_conductor_service", 5.0, 512 * 1024)

    await send(producer, b"\x00" * 300_000)

    [(_, value)] = factory.built[0].sent
    record = DeadLetterRecord.model_validate_json(value)
    assert len(value) <= 16 * 1024
    assert record.original_payload_truncated
    assert record.original_payload_length == 300_000


async def test_a_replayed_message_that_fails_again_adds_no_record_and_says_so() -> None:
    factory = Factory()
    producer = KafkaDlqProducer(factory, "batch_conductor_service", 5.0)
    origin = f"{dlq_topic(TOPIC)}/2/17"
    with capture_logs() as logs:
        headers = [("traceparent", b"00-ab"), (REPLAY_HEADER, origin.encode())]
        assert await send(producer, headers=headers) is False
    assert factory.built == []
    (logged,) = [line for line in logs if line["event"] == "replayed_event_failed_again"]
    assert logged["dead_letter_record"] == origin
    assert logged["reason"] == "invalid_json"


@pytest.mark.parametrize(
    "value",
    [
        f"{dlq_topic('huleedu.other.v1')}/0/1".encode(),  # another topic's record
        f"{dlq_topic(TOPIC)}/0".encode(),
        f"{dlq_topic(TOPIC)}/x/1".encode(),
        b"\xff",
        None,
    ],
)
async def test_a_replay_header_not_naming_a_record_of_this_topics_dlq_is_dead_lettered(
    value: bytes | None,
) -> None:
    factory = Factory()
    assert await send(dlq(factory), headers=[(REPLAY_HEADER, value)]) is True
    (built,) = factory.built
    assert [topic for topic, _ in built.sent] == [dlq_topic(TOPIC)]


@given(
    st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), min_size=1),
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**63 - 1),
    st.text(min_size=1),
)
def test_the_replay_header_names_its_record_for_that_topic_alone(
    topic: str, partition: int, offset: int, other: str
) -> None:
    header = replay_header(dlq_topic(topic), partition, offset)
    assert replayed_from([header], topic) == f"{dlq_topic(topic)}/{partition}/{offset}"
    assert replayed_from([header], other) is None or other == topic
    assert replayed_from([], topic) is None
    assert replayed_from(None, topic) is None
