"""The request's server span, when tracing is on (docs/tracing.md).

OpenTelemetry's ASGI middleware (wiring/tracing.py) starts it, continuing the caller's
`traceparent`. Here, once the response is ready: the span is named by its route (not its path,
which holds batch ids), carries what the route decided (for /define: the batch, the pipeline
asked for, the steps answered and pruned, the correlation id) and the error code of an error
answer, and the response carries the trace id (`X-Trace-Id`). A 5xx sets the span's status to
ERROR (the middleware, by the HTTP semantic conventions; a 4xx is the caller's error and leaves
it unset), and an unhandled error is recorded on it with its exception.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.trace import Span
from quart import Quart, Response, request

from batch_conductor_service.api.correlation import adopt_correlation_id
from batch_conductor_service.api.request_log import noted
from huleedu_service_libs.http_metrics import KNOWN_METHODS
from huleedu_service_libs.trace_context import (
    NO_TRACE,
    TRACEPARENT,
    TRACESTATE,
    TraceCarrier,
    carrier_of,
    normalised,
)

TRACE_ID_HEADER = "X-Trace-Id"
# The request log's fields that become span attributes, and their names there.
_ATTRIBUTES = {
    "batch_id": "bcs.batch_id",
    "requested_pipeline": "bcs.requested_pipeline",
    "final_pipeline": "bcs.final_pipeline",
    "pruned": "bcs.pruned_steps",
}


# The headers OpenTelemetry's default propagators read (W3C trace context and baggage): ASCII
# by their specifications.
_PROPAGATED = frozenset({b"traceparent", b"tracestate", b"baggage"})
# An ASGI application: (scope, receive, send).
Asgi = Callable[[Any, Any, Any], Awaitable[None]]


def without_unreadable_trace_headers(app: Asgi) -> Asgi:
    """Drops a propagation header that is not ASCII before OpenTelemetry's middleware reads it:
    its header decoding raises on some such bytes (0x80 then a backslash: not UTF-8, then a
    dangling escape), which would answer a 500 before any route runs. Invalid either way, the
    request then starts a trace of its own."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and any(
            name in _PROPAGATED and not value.isascii() for name, value in scope["headers"]
        ):
            headers = [
                (name, value)
                for name, value in scope["headers"]
                if name not in _PROPAGATED or value.isascii()
            ]
            scope = {**scope, "headers": headers}
        await app(scope, receive, send)

    return asgi


def annotate_request_spans(app: Quart) -> None:
    @app.after_request
    async def _annotate_span(response: Response) -> Response:
        span = trace.get_current_span()
        context = span.get_span_context()
        if not context.is_valid:
            return response
        response.headers[TRACE_ID_HEADER] = trace.format_trace_id(context.trace_id)
        if span.is_recording():
            await _annotate(span, response)
        return response


async def _annotate(span: Span, response: Response) -> None:
    method = request.method if request.method in KNOWN_METHODS else "HTTP"
    rule = request.url_rule
    if rule is not None:
        span.update_name(f"{method} {rule.rule}")
        span.set_attribute("http.route", rule.rule)
    attributes: dict[str, Any] = {"bcs.correlation_id": adopt_correlation_id()}
    batch_id = (request.view_args or {}).get("batch_id")
    if isinstance(batch_id, str):
        attributes["bcs.batch_id"] = batch_id
    for field, value in noted().items():
        name = _ATTRIBUTES.get(field)
        if name is not None:
            attributes[name] = value
    if response.status_code >= 400:
        error = await _error_code(response)
        if error is not None:
            attributes["bcs.error"] = error
    span.set_attributes(attributes)


async def _error_code(response: Response) -> str | None:
    """The `error` of an error body ({"error": "<code>", "detail": ...})."""
    try:
        body = orjson.loads(await response.get_data())
    except orjson.JSONDecodeError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def record_unhandled_error(error: BaseException) -> None:
    """On the request's span, when there is one that records."""
    span = trace.get_current_span()
    if span.is_recording():
        span.record_exception(error)


def request_trace_context() -> TraceCarrier:
    """The trace context a dead-letter record of this request keeps: the caller's own when it
    sent a valid one (as a Kafka message's record keeps the message's), else this request's
    span's, else none."""
    sent = {
        name: values[0]
        for name in (TRACEPARENT, TRACESTATE)
        if (values := request.headers.getlist(name))
    }
    own = normalised(sent) if TRACEPARENT in sent else NO_TRACE
    return own or carrier_of()
