"""The service as a process, tracing to an OTLP receiver on 127.0.0.1 over HTTP/protobuf and over
gRPC (the SDK's exporters, as configured by OTEL_* variables alone): a /define that brings a
traceparent continues that trace, its Redis read is a child of its server span, its response
and its log line carry the trace id, a hostile traceparent sent over the socket is ignored, and
what is queued at SIGTERM is flushed before the process exits."""

import json
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from batch_conductor_service.dev.embedded_broker import free_port
from tests.conftest import service_missing
from tests.e2e.conftest import RunningService, start_service, stop_if_running
from tests.support.otlp_receiver import (
    KIND_CLIENT,
    KIND_SERVER,
    OtlpGrpcReceiver,
    OtlpHttpReceiver,
    ReceivedSpan,
    children_of,
    otlp_receiver,
)

pytestmark = pytest.mark.e2e

REDIS_URL = "redis://127.0.0.1:6379/0"
DEFINE = "/internal/v1/pipelines/define"


@pytest.fixture
def key_prefix() -> Iterator[str]:
    prefix = f"bcs-e2e-trace-{uuid.uuid4().hex[:12]}"
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except (RedisConnectionError, OSError) as exc:
        client.close()
        service_missing(f"Redis at {REDIS_URL} ({exc})")
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


def traced_service(
    receiver: OtlpHttpReceiver | OtlpGrpcReceiver, protocol: str, prefix: str, log: Path
) -> RunningService:
    return start_service(
        [sys.executable, "-m", "batch_conductor_service"],
        {
            "BCS_ENVIRONMENT": "production",
            "BCS_KAFKA_CONSUMER_ENABLED": "false",
            "BCS_REDIS_URL": REDIS_URL,
            "BCS_REDIS_KEY_PREFIX": prefix,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            # Nothing is exported before SIGTERM: what arrives was flushed at shutdown.
            "OTEL_BSP_SCHEDULE_DELAY": "600000",
        },
        free_port(),
        log,
    )


def raw_post(port: int, path: str, body: bytes, extra_headers: list[bytes]) -> int:
    """A POST written byte for byte, so that a header value can be any bytes HTTP allows."""
    head = [
        f"POST {path} HTTP/1.1".encode(),
        f"Host: 127.0.0.1:{port}".encode(),
        b"Content-Type: application/json",
        f"Content-Length: {len(body)}".encode(),
        b"Connection: close",
        *extra_headers,
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_traced_define_continues_the_callers_trace_down_to_redis(
    tmp_path: Path, key_prefix: str, protocol: str
) -> None:
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    batch = f"b-{uuid.uuid4().hex[:8]}"
    with otlp_receiver(protocol) as receiver:
        service = traced_service(receiver, protocol, key_prefix, tmp_path / "service.log")
        try:
            status, _ = service.post_json(
                "/internal/v1/phases/complete",
                {"batch_id": batch, "phase_name": "spellcheck", "success": True},
            )
            assert status == 200
            status, headers, body = service.request(
                "POST",
                DEFINE,
                json.dumps({"batch_id": batch, "requested_pipeline": "cj_assessment"}).encode(),
                {
                    "Content-Type": "application/json",
                    "traceparent": f"00-{trace_id}-{parent_id}-01",
                },
            )
            assert status == 200
            assert json.loads(body)["final_pipeline"] == ["cj_assessment"]
            assert {k.lower(): v for k, v in headers.items()}["x-trace-id"] == trace_id
            port = int(service.base_url.rsplit(":", 1)[1])
            hostile = [
                b"traceparent: 00-" + b"f" * 20_000,
                b"traceparent: \xff\xfe\xc3\xa9-not-ascii",
                b"tracestate: \xe2\x98\x83=\xe2\x98\x83",
            ]
            body = json.dumps({"batch_id": batch, "requested_pipeline": "nlp"}).encode()
            for header in hostile:
                assert raw_post(port, DEFINE, body, [header]) == 200
            assert service.stop() == 0
        finally:
            stop_if_running(service)

        def defined(spans: list[ReceivedSpan]) -> bool:
            return any(s.trace_id == trace_id and s.kind == KIND_SERVER for s in spans)

        spans = receiver.wait_for(defined)

    [server] = [s for s in spans if s.trace_id == trace_id and s.kind == KIND_SERVER]
    assert server.parent_span_id == parent_id
    assert server.name == f"POST {DEFINE}"
    assert server.attributes["bcs.batch_id"] == batch
    assert server.attributes["bcs.requested_pipeline"] == "cj_assessment"
    assert server.attributes["bcs.final_pipeline"] == ["cj_assessment"]
    assert server.attributes["bcs.pruned_steps"] == ["spellcheck"]
    redis_reads = children_of(spans, server)
    assert redis_reads
    assert all(s.kind == KIND_CLIENT and s.attributes["db.system"] == "redis" for s in redis_reads)
    assert server.resource["service.name"] == "batch_conductor_service"
    assert server.resource["service.namespace"] == "huleedu"
    assert server.resource["deployment.environment"] == "production"
    assert server.resource["service.version"]
    # The hostile requests were answered in traces of their own.
    others = [
        s
        for s in spans
        if s.kind == KIND_SERVER and s.attributes.get("bcs.requested_pipeline") == "nlp"
    ]
    assert len(others) == 3
    assert all(s.parent_span_id == "" for s in others)
    [line] = [
        line
        for line in service.log_lines()
        if line.get("event") == "http_request" and line.get("requested_pipeline") == "cj_assessment"
    ]
    assert (line["trace_id"], line["span_id"]) == (trace_id, server.span_id)
