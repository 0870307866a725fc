"""OTLP trace receivers on 127.0.0.1 for the tests: what the SDK's exporters really send,
decoded with opentelemetry-proto. One speaks OTLP/HTTP (POST /v1/traces, protobuf), the other
OTLP/gRPC (TraceService/Export)."""

import asyncio
import gzip
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    links: tuple[tuple[str, str], ...]
    status_code: int
    events: tuple[str, ...]
    resource: dict[str, Any]


# opentelemetry.proto.trace.v1.Span.SpanKind and Status.StatusCode
KIND_INTERNAL, KIND_SERVER, KIND_CLIENT, KIND_CONSUMER = 1, 2, 3, 5
STATUS_UNSET, STATUS_ERROR = 0, 2


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs: Sequence[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def decode(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=span.kind,
                        attributes=_attributes(span.attributes),
                        links=tuple((ln.trace_id.hex(), ln.span_id.hex()) for ln in span.links),
                        status_code=span.status.code,
                        events=tuple(event.name for event in span.events),
                        resource=resource,
                    )
                )
    return spans


class _Received:
    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self.requests = 0

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        decoded = decode(request)
        with self._lock:
            self.requests += 1
            self._spans.extend(decoded)

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(
        self, accept: Callable[[list[ReceivedSpan]], bool], within_seconds: float = 20.0
    ) -> list[ReceivedSpan]:
        """The spans received once `accept` holds for them (a bounded wait, not a timing)."""
        deadline = time.monotonic() + within_seconds
        while True:
            spans = self.spans()
            if accept(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({span.name for span in spans})
                raise AssertionError(f"not received within {within_seconds}s; got {names}")
            time.sleep(0.05)

    async def until(
        self, accept: Callable[[list[ReceivedSpan]], bool], within_seconds: float = 30.0
    ) -> list[ReceivedSpan]:
        """wait_for, for a test whose service runs on its own event loop."""
        return await asyncio.to_thread(self.wait_for, accept, within_seconds)


class OtlpHttpReceiver(_Received):
    """POST /v1/traces, application/x-protobuf (gzip or not), as the OTLP/HTTP exporter sends."""

    def __init__(self) -> None:
        super().__init__()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                received.add(request)
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "OtlpHttpReceiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class OtlpGrpcReceiver(_Received):
    """opentelemetry.proto.collector.trace.v1.TraceService/Export, over gRPC without TLS."""

    def __init__(self) -> None:
        super().__init__()
        received = self

        class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(
                self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
            ) -> trace_service_pb2.ExportTraceServiceResponse:
                received.add(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), self._server)  # type: ignore[no-untyped-call]
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self) -> "OtlpGrpcReceiver":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)


@contextmanager
def otlp_receiver(protocol: str) -> Iterator[OtlpHttpReceiver | OtlpGrpcReceiver]:
    """A started receiver for `http/protobuf` or `grpc`, stopped afterwards."""
    receiver = OtlpGrpcReceiver() if protocol == "grpc" else OtlpHttpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def children_of(spans: Sequence[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [
        s for s in spans if s.trace_id == parent.trace_id and s.parent_span_id == parent.span_id
    ]
