"""W3C trace context as the platform carries it between services.

A producer puts `traceparent` (and `tracestate`) in an event envelope's `metadata` (the
platform's convention), or in Kafka headers; an HTTP caller sends them as headers. What arrives
is read defensively: only text values of a bounded length are taken, and the W3C propagator
then accepts a well-formed `traceparent` or nothing. A value that is not one is ignored, never
an error: a message or request is never refused for its trace context.
"""

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# A version-00 traceparent is 55 characters; later versions may append fields. The W3C
# propagator drops a tracestate above 512 characters itself.
MAX_TRACEPARENT_CHARS = 256
MAX_TRACESTATE_CHARS = 512
_LIMITS = ((TRACEPARENT, MAX_TRACEPARENT_CHARS), (TRACESTATE, MAX_TRACESTATE_CHARS))
_LIMIT_OF = dict(_LIMITS)

# `traceparent` and `tracestate` as text, as a propagator reads and writes them.
TraceCarrier = Mapping[str, str]
NO_TRACE: TraceCarrier = MappingProxyType({})

# The platform's propagator, whatever OTEL_PROPAGATORS says for HTTP: its envelopes carry W3C.
W3C = TraceContextTextMapPropagator()


def _usable(value: object, limit: int) -> bool:
    return type(value) is str and 0 < len(value) <= limit and value.isascii()


def carrier_from_metadata(metadata: object) -> TraceCarrier:
    """`traceparent` and `tracestate` of an envelope's `metadata`, when they are text of a
    usable length (anything else is ignored)."""
    if type(metadata) is not dict or TRACEPARENT not in metadata:
        return NO_TRACE
    carrier = {key: metadata[key] for key, limit in _LIMITS if _usable(metadata.get(key), limit)}
    return carrier if TRACEPARENT in carrier else NO_TRACE


def carrier_from_headers(headers: Sequence[tuple[str, bytes | None]] | None) -> TraceCarrier:
    """`traceparent` and `tracestate` of a Kafka message's headers (names in any case; the first
    of each wins), when they are ASCII of a usable length."""
    carrier: dict[str, str] = {}
    for name, value in headers or ():
        key = name.lower() if type(name) is str else None
        limit = _LIMIT_OF.get(key) if key is not None else None
        if limit is None or key in carrier or type(value) is not bytes:
            continue
        if 0 < len(value) <= limit and value.isascii():
            carrier[key] = value.decode("ascii")  # type: ignore[index]
    return carrier if TRACEPARENT in carrier else NO_TRACE


def context_from(carrier: TraceCarrier) -> Context | None:
    """The remote span context the carrier names, or None for no (or no valid) traceparent."""
    if not carrier:
        return None
    context = W3C.extract(carrier)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def carrier_of(context: Context | None = None) -> TraceCarrier:
    """The carrier of the span current in `context` (by default, the current context); empty
    when there is none."""
    carrier: dict[str, str] = {}
    W3C.inject(carrier, context)
    return carrier or NO_TRACE


def normalised(carrier: TraceCarrier) -> TraceCarrier:
    """The carrier as the propagator writes it back: a valid context, or nothing (values too
    long or not ASCII are ignored, as anywhere else)."""
    context = context_from(carrier_from_metadata(dict(carrier)))
    return carrier_of(context) if context is not None else NO_TRACE


def as_headers(carrier: TraceCarrier) -> list[tuple[str, bytes]]:
    """The carrier as Kafka headers."""
    return [(key, value.encode("ascii")) for key, value in carrier.items()]


def current_trace_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the span current now, or None."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)
