import json
import signal
import threading

from tests.e2e.conftest import RunningService

DEFINE = "/internal/v1/pipelines/define"


def test_define_over_http(service: RunningService) -> None:
    status, body = service.post_json(
        DEFINE, {"batch_id": "b1", "requested_pipeline": "ai_feedback"}
    )
    assert status == 200
    assert body["final_pipeline"] == ["spellcheck", "nlp", "ai_feedback"]


def test_malformed_and_oversized_requests_get_json_errors(service: RunningService) -> None:
    status, _, body = service.request("POST", DEFINE, b"{oops", {"Content-Type": "text/plain"})
    assert (status, json.loads(body)["error"]) == (400, "invalid_json")
    huge = b'{"batch_id": "' + b"x" * 200_000 + b'"}'
    status, _, body = service.request("POST", DEFINE, huge)
    assert (status, json.loads(body)["error"]) == (413, "request_too_large")


def test_health_and_metrics_answer(service: RunningService) -> None:
    status, _, body = service.request("GET", "/healthz")
    assert status == 200
    assert json.loads(body)["status"] in {"ok", "degraded"}
    status, _, metrics = service.request("GET", "/metrics")
    assert status == 200
    assert b"bcs_pipeline_resolutions_total" in metrics


def test_sigterm_exits_zero(service: RunningService) -> None:
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=20) == 0
    events = [line["event"] for line in service.log_lines()]
    # Said at the signal (from then on /readyz answers 503), before the rest stops.
    assert events.index("shutdown_begun") < events.index("service_stopped")
    assert [line["signal"] for line in service.log_lines() if "signal" in line] == ["SIGTERM"]


def test_sigint_finishes_a_request_in_flight_then_exits_zero(service: RunningService) -> None:
    # A slow upload keeps a request in flight while the signal arrives.
    import socket

    host, port = service.base_url.removeprefix("http://").split(":")
    body = json.dumps({"batch_id": "b9", "requested_pipeline": "nlp"}).encode()
    result: dict[str, bytes] = {}

    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST {DEFINE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        )
        sock.sendall(body[:10])
        service.process.send_signal(signal.SIGINT)
        threading.Event().wait(0.5)
        sock.sendall(body[10:])
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        result["response"] = b"".join(chunks)
    assert result["response"].startswith(b"HTTP/1.1 200")
    assert b'"final_pipeline":["spellcheck","nlp"]' in result["response"]
    assert service.process.wait(timeout=20) == 0
