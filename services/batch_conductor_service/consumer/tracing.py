"""The consumer's spans (docs/tracing.md).

Each consumed message gets a span of its own that continues the trace its producer started:
the W3C context in its envelope's `metadata` (the platform's convention), else in its Kafka
headers, else a new trace. A fetch's store write is one span with a link to each message it
carries: one write serves many traces, so it is parented by none of them.

Without a tracer (tracing off) a fetch costs one call and no span.
"""

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Protocol

from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    set_span_in_context,
    use_span,
)

from batch_conductor_service.consumer.translation import Event
from huleedu_service_libs.trace_context import (
    NO_TRACE,
    TraceCarrier,
    carrier_from_headers,
    carrier_of,
    context_from,
)


class Record(Protocol):
    """What the consumer reads of a consumed message (an aiokafka ConsumerRecord)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


def message_trace(record: Record, from_envelope: TraceCarrier) -> TraceCarrier:
    """The context a message carries: its envelope's, else its Kafka headers'."""
    return from_envelope or carrier_from_headers(record.headers)


class FetchSpans:
    """The spans of one fetch: one per message, and the store write's."""

    def __init__(self, tracer: Tracer | None, spans: dict[int, Span]) -> None:
        self._tracer = tracer
        self._spans = spans

    @contextmanager
    def storing(self, messages: int) -> Iterator[None]:
        """The store write's span, current inside the block (the store's own Redis and
        PostgreSQL spans nest under it), linked to every message of the fetch."""
        if self._tracer is None:
            yield
            return
        links = [Link(span.get_span_context()) for span in self._spans.values()]
        with self._tracer.start_as_current_span(
            "store fetch",
            context=Context(),
            links=links,
            attributes={"messaging.system": "kafka", "messaging.batch.message_count": messages},
        ):
            yield

    @contextmanager
    def of(self, record: Record) -> Iterator[None]:
        """The message's span current inside the block (its dead-letter send, its log line)."""
        span = self._spans.get(id(record))
        if span is None:
            yield
            return
        with use_span(span, end_on_exit=False):
            yield

    def trace_of(self, record: Record) -> TraceCarrier:
        """The context of the span that processed the message; empty without one."""
        span = self._spans.get(id(record))
        if span is None or not span.get_span_context().is_valid:
            return NO_TRACE
        return carrier_of(set_span_in_context(span, Context()))

    def dead_lettered(self, record: Record, reason: str, error: str) -> None:
        span = self._spans.get(id(record))
        if span is not None and span.is_recording():
            span.add_event("dead_lettered", {"bcs.dead_letter.reason": reason, "error": error})
            span.set_status(Status(StatusCode.ERROR, reason))

    def end(self, outcome_of: Mapping[int, str], failure: BaseException | None = None) -> None:
        """Ends every message's span with what became of it, or with the fetch's failure."""
        for key, span in self._spans.items():
            if span.is_recording():
                if failure is not None:
                    span.record_exception(failure)
                    span.set_status(Status(StatusCode.ERROR, type(failure).__name__))
                elif key in outcome_of:
                    span.set_attribute("bcs.outcome", outcome_of[key])
            span.end()


UNTRACED = FetchSpans(None, {})


def start_spans(
    tracer: Tracer,
    records: Sequence[Record],
    translated: Sequence[tuple[Record, Event]],
    envelope_traces: Mapping[int, TraceCarrier],
) -> FetchSpans:
    """A span for each of `records`; `envelope_traces`: by id() of a record the translation
    refused, the trace context its envelope carried."""
    facts_of = {id(record): facts for record, facts in translated}
    traces = {**envelope_traces, **{key: facts.trace for key, facts in facts_of.items()}}
    spans: dict[int, Span] = {}
    for record in records:
        key = id(record)
        carrier = message_trace(record, traces.get(key, NO_TRACE))
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
        }
        facts = facts_of.get(key)
        if facts is not None:
            attributes["messaging.message.id"] = facts.event_id
            if facts.correlation_id is not None:
                attributes["bcs.correlation_id"] = facts.correlation_id
            if facts.batch_id is not None:
                attributes["bcs.batch_id"] = facts.batch_id
        spans[key] = tracer.start_span(
            f"process {record.topic}",
            # A message without a context starts a trace of its own, never a child of
            # whatever happens to be current.
            context=context_from(carrier) or Context(),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
    return FetchSpans(tracer, spans)
