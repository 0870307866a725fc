"""With tracing on, every request has a server span that continues the caller's traceparent (or
starts a trace), named by its route, carrying what /define decided, its error code, and the
trace id in X-Trace-Id; a hostile traceparent or tracestate is ignored, never a 5xx. Spans are
read from the SDK's in-memory exporter behind the service's own batching processor (the OTLP
path itself is tested in tests/e2e/test_tracing_process.py)."""

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from quart import Quart

from batch_conductor_service.wiring.app import create_app
from batch_conductor_service.wiring.tracing import Tracing, TracingConfig
from huleedu_service_libs.logging_utils import configure_logging
from tests.support.hypothesis_profiles import examples
from tests.unit.api.test_pipeline_routes import Buggy, StoreDown
from tests.unit.conftest import repository_provider, unit_settings

DEFINE = "/internal/v1/pipelines/define"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


class Traced:
    def __init__(self, app: Quart, exporter: InMemorySpanExporter, tracing: Tracing) -> None:
        self.app = app
        self.exporter = exporter
        self.tracing = tracing

    def spans(self) -> list[ReadableSpan]:
        assert self.tracing.provider is not None
        self.tracing.provider.force_flush()
        return list(self.exporter.get_finished_spans())

    def server_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.kind is SpanKind.SERVER]


def traced_app(providers: Sequence[Any] = (), **overrides: object) -> Traced:
    exporter = InMemorySpanExporter()
    tracing = Tracing(TracingConfig("http/protobuf", 2048, 512, None), exporter=exporter)
    app = create_app(unit_settings(**overrides), providers=providers, tracing=tracing)
    return Traced(app, exporter, tracing)


@pytest.fixture
async def traced() -> AsyncIterator[Traced]:
    running = traced_app()
    async with running.app.test_app():
        yield running


def hex_of(number: int, width: int) -> str:
    return f"{number:0{width}x}"


async def test_define_continues_the_callers_trace_and_carries_what_it_decided(
    traced: Traced,
) -> None:
    client = traced.app.test_client()
    reported = await client.post(
        "/internal/v1/phases/complete",
        json={"batch_id": "b1", "phase_name": "spellcheck", "success": True},
    )
    assert reported.status_code == 200
    response = await client.post(
        DEFINE,
        json={"batch_id": "b1", "requested_pipeline": "cj_assessment", "correlation_id": "c-1"},
        headers={"traceparent": TRACEPARENT, "tracestate": "bos=1"},
    )

    assert response.status_code == 200
    assert response.headers["X-Trace-Id"] == TRACE_ID
    [span] = [s for s in traced.server_spans() if s.name == f"POST {DEFINE}"]
    assert hex_of(span.context.trace_id, 32) == TRACE_ID
    assert span.parent is not None
    assert hex_of(span.parent.span_id, 16) == PARENT_ID
    assert span.parent.is_remote
    assert span.context.trace_state.get("bos") == "1"
    attributes = dict(span.attributes or {})
    assert attributes["bcs.batch_id"] == "b1"
    assert attributes["bcs.requested_pipeline"] == "cj_assessment"
    assert attributes["bcs.final_pipeline"] == ("cj_assessment",)
    assert attributes["bcs.pruned_steps"] == ("spellcheck",)
    assert attributes["bcs.correlation_id"] == "c-1"
    assert attributes["http.route"] == DEFINE
    assert span.status.status_code is StatusCode.UNSET


async def test_a_request_without_traceparent_starts_a_trace_named_in_its_response(
    traced: Traced,
) -> None:
    response = await traced.app.test_client().get("/internal/v1/batches/b-77")

    [span] = traced.server_spans()
    assert span.parent is None
    assert response.headers["X-Trace-Id"] == hex_of(span.context.trace_id, 32)
    # Named by the route, not the path (which holds the batch id).
    assert span.name == "GET /internal/v1/batches/<batch_path:batch_id>"
    assert dict(span.attributes or {})["bcs.batch_id"] == "b-77"


async def test_a_store_outage_sets_the_span_status_and_names_the_error() -> None:
    running = traced_app([repository_provider(StoreDown())])
    async with running.app.test_app():
        response = await running.app.test_client().post(
            DEFINE, json={"batch_id": "b1", "requested_pipeline": "cj_assessment"}
        )
    assert response.status_code == 503
    [span] = running.server_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["bcs.error"] == "state_store_unavailable"


async def test_a_bug_is_recorded_on_the_span_with_its_exception() -> None:
    running = traced_app([repository_provider(Buggy())])
    async with running.app.test_app():
        response = await running.app.test_client().post(
            DEFINE, json={"batch_id": "b1", "requested_pipeline": "cj_assessment"}
        )
    assert response.status_code == 500
    [span] = running.server_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    assert dict(span.events[0].attributes or {})["exception.type"] == "KeyError"
    assert dict(span.attributes or {})["bcs.error"] == "internal_error"


async def test_a_callers_error_names_its_code_and_leaves_the_status_unset(traced: Traced) -> None:
    # The HTTP semantic conventions: a 4xx is the caller's error, not the server span's.
    response = await traced.app.test_client().post(
        DEFINE, json={"batch_id": "b1", "requested_pipeline": "no_such_pipeline"}
    )
    assert response.status_code == 400
    [span] = traced.server_spans()
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {})["bcs.error"] == "unknown_pipeline"


async def test_log_lines_of_a_traced_request_carry_its_trace_and_span_ids(
    traced: Traced, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("INFO", "bcs")
    capsys.readouterr()
    response = await traced.app.test_client().post(
        DEFINE,
        json={"batch_id": "b1", "requested_pipeline": "cj_assessment"},
        headers={"traceparent": TRACEPARENT},
    )
    await asyncio.sleep(0)  # the log writer flushes on the loop's next turn
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [request_line] = [line for line in lines if line.get("event") == "http_request"]
    [span] = traced.server_spans()
    assert request_line["trace_id"] == response.headers["X-Trace-Id"] == TRACE_ID
    assert request_line["span_id"] == hex_of(span.context.span_id, 16)


async def test_with_tracing_off_nothing_is_wrapped_and_no_trace_id_is_sent(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(unit_settings())
    assert "OpenTelemetryMiddleware" not in type(app.asgi_app).__name__
    configure_logging("INFO", "bcs")
    async with app.test_app():
        response = await app.test_client().post(
            DEFINE,
            json={"batch_id": "b1", "requested_pipeline": "cj_assessment"},
            headers={"traceparent": TRACEPARENT},
        )
        await asyncio.sleep(0)
    assert response.status_code == 200
    assert "X-Trace-Id" not in response.headers
    assert "trace_id" not in capsys.readouterr().out


# Raw ASGI, so that header values can be any bytes (the test client encodes text).
async def raw_define(app: Quart, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, str]]:
    body = json.dumps({"batch_id": "b1", "requested_pipeline": "cj_assessment"}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": DEFINE,
        "raw_path": DEFINE.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 4002),
        "extensions": {},
    }
    incoming: list[dict[str, Any]] = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}


near_valid = st.builds(
    lambda version, trace, span, flags, tail: f"{version}-{trace}-{span}-{flags}{tail}",
    st.sampled_from(["00", "01", "ff", "0", "zz", "FF"]),
    st.sampled_from(["0" * 32, TRACE_ID, TRACE_ID.upper(), TRACE_ID[:31], "é" * 32]),
    st.sampled_from(["0" * 16, PARENT_ID, PARENT_ID[:15], PARENT_ID + "0"]),
    st.sampled_from(["01", "00", "1", "zz"]),
    st.sampled_from(["", "-", "-extra", "-" + "x" * 5000, "\x00", " "]),
).map(lambda text: text.encode("utf-8"))
hostile_values = st.one_of(
    st.binary(max_size=300),
    near_valid,
    st.integers(min_value=300, max_value=20_000).map(lambda n: b"00-" + b"a" * n),
    st.text(max_size=80).map(lambda text: text.encode("utf-8", "surrogatepass")),
    # What an HTTP server delivers at all: h11 refuses CR, LF and NUL in a header value.
).map(lambda value: value.translate(None, b"\r\n\x00"))


@pytest.fixture(scope="module")
def hostile_app() -> Iterator[Traced]:
    running = traced_app()
    loop = asyncio.new_event_loop()
    context = running.app.test_app()
    loop.run_until_complete(context.__aenter__())
    running.loop = loop  # type: ignore[attr-defined]
    yield running
    loop.run_until_complete(context.__aexit__(None, None, None))
    loop.close()


@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(traceparent=hostile_values, tracestate=st.none() | hostile_values)
def test_a_hostile_traceparent_or_tracestate_is_ignored_never_a_5xx(
    hostile_app: Traced, traceparent: bytes, tracestate: bytes | None
) -> None:
    headers = [(b"traceparent", traceparent)]
    if tracestate is not None:
        headers.append((b"tracestate", tracestate))
    loop: asyncio.AbstractEventLoop = hostile_app.loop  # type: ignore[attr-defined]
    status, response_headers = loop.run_until_complete(raw_define(hostile_app.app, headers))
    assert status == 200
    # Always a trace: the caller's when valid, else one of its own.
    assert re.fullmatch(r"[0-9a-f]{32}", response_headers["x-trace-id"])
    assert response_headers["x-trace-id"] != "0" * 32


async def test_the_openapi_document_describes_the_trace_headers(traced: Traced) -> None:
    client = traced.app.test_client()
    document = await (await client.get("/openapi.json")).get_json()
    define = document["paths"][DEFINE]["post"]
    for status, response in define["responses"].items():
        assert "X-Trace-Id" in response["headers"], status
    pattern = define["responses"]["200"]["headers"]["X-Trace-Id"]["schema"]["pattern"]
    sent = await client.post(DEFINE, json={"batch_id": "b1", "requested_pipeline": "nlp"})
    assert re.fullmatch(pattern, sent.headers["X-Trace-Id"])
    parameters = {p["name"] for p in define["parameters"] if p["in"] == "header"}
    assert {"traceparent", "tracestate"} <= parameters


@pytest.mark.parametrize("header", [b"traceparent", b"tracestate", b"baggage"])
def test_a_propagation_header_opentelemetry_cannot_decode_starts_a_trace_of_its_own(
    hostile_app: Traced, header: bytes
) -> None:
    # Found by the test above: neither UTF-8 nor a complete escape, OpenTelemetry's ASGI
    # middleware raised decoding it, and the request answered 500 before any route ran.
    headers = [(header, b"\x80\\")]
    if header != b"traceparent":
        headers.insert(0, (b"traceparent", TRACEPARENT.encode()))
    loop: asyncio.AbstractEventLoop = hostile_app.loop  # type: ignore[attr-defined]
    status, response_headers = loop.run_until_complete(raw_define(hostile_app.app, headers))
    assert status == 200
    trace_id = response_headers["x-trace-id"]
    if header == b"traceparent":
        assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
        assert trace_id != "0" * 32
    else:
        assert trace_id == TRACE_ID  # the valid traceparent beside it is still continued
