"""The consumer's spans (consumer/tracing.py): each message's span continues the context its
envelope's metadata carries (the platform's convention), else its Kafka headers', else starts
a trace; the fetch's store write is one span linked to the messages, parented by none; a
dead-letter record keeps the message's trace context, with tracing on or off."""

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from batch_conductor_service.errors import StateStoreUnavailableError
from common_core.topics import Topic
from tests.support import event_factory as ev
from tests.support.consumed_message import Message
from tests.support.hypothesis_profiles import examples
from tests.support.pipeline_harness import PipelineHarness, memory_harness

READY = Topic.BATCH_ESSAYS_READY.value
SPELLCHECK = Topic.SPELLCHECK_COMPLETED.value
TRACE_A, SPAN_A = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACE_B, SPAN_B = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"


def traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"


def with_metadata(document: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {**document, "metadata": metadata}


class Traced:
    def __init__(self, **options: Any) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.harness: PipelineHarness = memory_harness(
            tracer=provider.get_tracer("test"), **options
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def message_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.kind is SpanKind.CONSUMER]

    def store_span(self) -> ReadableSpan:
        [span] = [s for s in self.spans() if s.name == "store fetch"]
        return span


@pytest.fixture
def traced() -> Iterator[Traced]:
    return Traced()


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def parent_ids(span: ReadableSpan) -> tuple[str, str] | None:
    if span.parent is None:
        return None
    return f"{span.parent.trace_id:032x}", f"{span.parent.span_id:016x}"


async def test_each_message_continues_its_envelopes_trace_and_the_store_write_links_them(
    traced: Traced,
) -> None:
    await traced.harness.fetch(
        (READY, with_metadata(ev.ready("b1", ["e1"]), traceparent=traceparent(TRACE_A, SPAN_A))),
        (
            SPELLCHECK,
            with_metadata(ev.spellcheck("b1", "e1"), traceparent=traceparent(TRACE_B, SPAN_B)),
        ),
    )

    by_topic = {s.attributes["messaging.destination.name"]: s for s in traced.message_spans()}  # type: ignore[index]
    ready, result = by_topic[READY], by_topic[SPELLCHECK]
    assert parent_ids(ready) == (TRACE_A, SPAN_A)
    assert parent_ids(result) == (TRACE_B, SPAN_B)
    assert ready.name == f"process {READY}"
    assert ready.attributes is not None
    assert result.attributes is not None
    assert ready.attributes["bcs.outcome"] == "applied"
    assert ready.attributes["bcs.batch_id"] == "b1"
    assert ready.attributes["messaging.system"] == "kafka"
    assert ready.attributes["messaging.kafka.offset"] == 0
    assert result.attributes["messaging.kafka.offset"] == 1
    store = traced.store_span()
    # One write for both traces: parented by neither, linked to both.
    assert store.parent is None
    assert hex_ids(store)[0] not in {TRACE_A, TRACE_B}
    assert {
        (f"{ln.context.trace_id:032x}", f"{ln.context.span_id:016x}") for ln in store.links
    } == {
        hex_ids(ready),
        hex_ids(result),
    }


async def test_kafka_headers_serve_when_the_envelope_carries_none(traced: Traced) -> None:
    document = ev.ready("b1", ["e1"])
    message = Message(
        READY, 0, 0, ev.encode(document), (("traceparent", traceparent(TRACE_A, SPAN_A).encode()),)
    )
    await traced.harness.handle([message])

    [span] = traced.message_spans()
    assert parent_ids(span) == (TRACE_A, SPAN_A)


async def test_the_envelopes_context_wins_over_the_headers(traced: Traced) -> None:
    document = with_metadata(ev.ready("b1", ["e1"]), traceparent=traceparent(TRACE_B, SPAN_B))
    message = Message(
        READY, 0, 0, ev.encode(document), (("traceparent", traceparent(TRACE_A, SPAN_A).encode()),)
    )
    await traced.harness.handle([message])

    [span] = traced.message_spans()
    assert parent_ids(span) == (TRACE_B, SPAN_B)


async def test_a_message_without_context_starts_a_trace_of_its_own(traced: Traced) -> None:
    await traced.harness.fetch((READY, ev.ready("b1", ["e1"])), (READY, ev.ready("b2", ["e2"])))

    spans = traced.message_spans()
    assert [s.parent for s in spans] == [None, None]
    assert len({s.context.trace_id for s in spans}) == 2


async def test_a_dead_lettered_message_keeps_its_trace_context_in_the_record(
    traced: Traced,
) -> None:
    carrier = {"traceparent": traceparent(TRACE_A, SPAN_A), "tracestate": "bos=1"}
    broken = with_metadata(ev.ready("b1", ["e1"]), **carrier)
    del broken["data"]["ready_essays"]
    await traced.harness.fetch((READY, broken))

    [sent] = traced.harness.dead_letters.sent
    assert dict(sent.trace_context) == carrier
    [span] = traced.message_spans()
    assert parent_ids(span) == (TRACE_A, SPAN_A)
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["dead_lettered"]
    assert span.attributes is not None
    assert span.attributes["bcs.outcome"] == "dead_lettered"


async def test_unreadable_bytes_keep_the_context_their_headers_carried(traced: Traced) -> None:
    message = Message(
        READY, 0, 7, b"\xff not json", (("TraceParent", traceparent(TRACE_B, SPAN_B).encode()),)
    )
    await traced.harness.handle([message])

    [sent] = traced.harness.dead_letters.sent
    assert dict(sent.trace_context) == {"traceparent": traceparent(TRACE_B, SPAN_B)}


async def test_a_message_without_context_is_dead_lettered_with_the_trace_bcs_started(
    traced: Traced,
) -> None:
    await traced.harness.handle([Message(READY, 0, 3, b"{")])

    [sent] = traced.harness.dead_letters.sent
    [span] = traced.message_spans()
    trace_id, span_id = hex_ids(span)
    # (The flags are the SDK's: sampled, and W3C level 2's random trace id.)
    assert list(sent.trace_context) == ["traceparent"]
    assert sent.trace_context["traceparent"].startswith(f"00-{trace_id}-{span_id}-")


async def test_with_tracing_off_the_record_still_keeps_the_messages_context() -> None:
    harness = memory_harness()
    broken = with_metadata(ev.ready("b1", ["e1"]), traceparent=traceparent(TRACE_A, SPAN_A))
    del broken["data"]["ready_essays"]
    await harness.fetch((READY, broken), (READY, {**broken, "event_id": "not-a-uuid"}))

    assert [dict(sent.trace_context) for sent in harness.dead_letters.sent] == [
        {"traceparent": traceparent(TRACE_A, SPAN_A)}
    ] * 2


async def test_an_outage_ends_every_span_with_its_error() -> None:
    class Down:
        async def apply(self, changes: Any) -> Any:
            raise StateStoreUnavailableError("redis", "connection refused")

    traced = Traced()
    traced.harness.pipeline._repository = Down()  # type: ignore[assignment]
    with pytest.raises(StateStoreUnavailableError):
        await traced.harness.fetch((READY, ev.ready("b1", ["e1"])))

    [span] = traced.message_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.end_time is not None
    assert traced.store_span().status.status_code is StatusCode.ERROR


json_values = st.recursive(
    st.none()
    | st.booleans()
    # What a JSON producer can send that BCS reads at all (orjson: 64-bit integers).
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=60),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
hostile_traceparents = st.one_of(
    json_values,
    st.text(max_size=120),
    st.integers(min_value=200, max_value=50_000).map(lambda n: "00-" + "a" * n),
    st.just(traceparent("0" * 32, SPAN_A)),
    st.just(traceparent(TRACE_A, SPAN_A).upper()),
    st.just(traceparent(TRACE_A, SPAN_A) + "-extra"),
    st.just("ff" + traceparent(TRACE_A, SPAN_A)[2:]),
    st.just(traceparent(TRACE_A, SPAN_A).replace("a", "\u0430")),  # Cyrillic a
)


@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=hostile_traceparents, state=st.none() | json_values | st.text(max_size=600))
async def test_a_hostile_traceparent_in_the_metadata_is_ignored_never_poison(
    value: Any, state: Any
) -> None:
    traced = Traced()
    metadata: dict[str, Any] = {"traceparent": value}
    if state is not None:
        metadata["tracestate"] = state
    [message] = await traced.harness.fetch(
        (READY, with_metadata(ev.ready("b1", ["e1"]), **metadata))
    )

    assert traced.harness.dead_letters.sent == []
    assert traced.harness.processed(READY, "applied") == 1
    [span] = traced.message_spans()
    assert span.parent is None or parent_ids(span) == (TRACE_A, SPAN_A)
    assert message.offset == 0
