"""Every request leaves one log line at INFO: method, route, status, duration and correlation id;
/define's also carries what it was asked and what it answered."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quart import Quart
from quart.typing import TestClientProtocol as Client
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from tests.support.hypothesis_profiles import examples
from tests.unit.api.test_pipeline_routes import StoreDown
from tests.unit.conftest import AppFactory, repository_provider

DEFINE = "/internal/v1/pipelines/define"
KEY = "s3cret"

Send = Callable[[Client], Awaitable[Any]]


def request_lines(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in logs if line["event"] == "http_request"]


async def one_request(app: Quart, send: Send) -> tuple[Any, list[dict[str, Any]]]:
    """The response, and every line logged while it was handled."""
    async with app.test_app():
        client = app.test_client()
        with capture_logs(processors=[merge_contextvars]) as logs:
            response = await send(client)
    return response, logs


def define(body: dict[str, Any], **headers: str) -> Send:
    return lambda client: client.post(DEFINE, json=body, headers=headers)


def raw_post(path: str, data: bytes) -> Send:
    return lambda client: client.post(path, data=data, headers={"Content-Type": "application/json"})


def get(path: str, **headers: str) -> Send:
    return lambda client: client.get(path, headers=headers)


GOOD = {"batch_id": "b1", "requested_pipeline": "nlp"}

# (what is sent, the app's settings, its store, the route logged, the status answered)
REQUESTS: dict[str, tuple[Send, dict[str, object], Any, str, int]] = {
    "define": (define(GOOD), {}, None, DEFINE, 200),
    "validation": (define({"batch_id": "b1"}), {}, None, DEFINE, 400),
    "invalid json": (raw_post(DEFINE, b"{not json"), {}, None, DEFINE, 400),
    "unknown pipeline": (define({**GOOD, "requested_pipeline": "x"}), {}, None, DEFINE, 400),
    "too large": (raw_post(DEFINE, b" " * 2000), {"MAX_REQUEST_BYTES": 256}, None, DEFINE, 413),
    "no key": (define(GOOD), {"INTERNAL_API_KEY": KEY}, None, DEFINE, 401),
    "unknown path": (get("/nowhere"), {}, None, "unmatched", 404),
    "store down": (define(GOOD), {}, StoreDown(), DEFINE, 503),
    "batch": (
        get("/internal/v1/batches/b1"),
        {},
        None,
        "/internal/v1/batches/<batch_path:batch_id>",
        404,
    ),
    "health": (get("/healthz"), {}, None, "/healthz", 200),
    "liveness": (get("/livez"), {}, None, "/livez", 200),
    "metrics": (get("/metrics"), {}, None, "/metrics", 200),
}


@pytest.mark.parametrize("kind", sorted(REQUESTS))
async def test_every_request_leaves_one_info_line_with_its_outcome(
    make_app: AppFactory, kind: str
) -> None:
    send, app_settings, store, route, status = REQUESTS[kind]
    providers = [] if store is None else [repository_provider(store)]
    response, logs = await one_request(make_app(providers=providers, **app_settings), send)
    assert response.status_code == status
    [line] = request_lines(logs)
    assert line["log_level"] == "info"
    assert (line["route"], line["status"]) == (route, status)
    assert line["method"] == ("GET" if route != DEFINE else "POST")
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert line["correlation_id"] == response.headers["X-Correlation-ID"]


async def test_define_writes_one_line_with_the_request_and_the_resolution(
    make_app: AppFactory,
) -> None:
    app = make_app()
    async with app.test_app():
        client = app.test_client()
        report = {"batch_id": "b1", "phase_name": "spellcheck", "success": True}
        assert (await client.post("/internal/v1/phases/complete", json=report)).status_code == 200
        with capture_logs(processors=[merge_contextvars]) as logs:
            response = await client.post(
                DEFINE,
                json={
                    **GOOD,
                    "correlation_id": "corr-9",
                    "batch_metadata": {"prompt_attached": True, "a": 2},
                },
            )
    assert response.status_code == 200
    [line] = logs
    assert line == {
        "event": "http_request",
        "log_level": "info",
        "method": "POST",
        "route": DEFINE,
        "status": 200,
        "duration_ms": line["duration_ms"],
        "correlation_id": "corr-9",
        "batch_id": "b1",
        "requested_pipeline": "nlp",
        "batch_metadata_keys": ["a", "prompt_attached"],
        "final_pipeline": ["nlp"],
        "pruned": ["spellcheck"],
    }


async def test_a_refused_define_still_names_its_batch(make_app: AppFactory) -> None:
    response, logs = await one_request(
        make_app(providers=[repository_provider(StoreDown())]), define(GOOD)
    )
    assert response.status_code == 503
    [line] = request_lines(logs)
    assert (line["batch_id"], line["requested_pipeline"]) == ("b1", "nlp")
    assert "final_pipeline" not in line


methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "BREW"])
paths = st.sampled_from(
    [DEFINE, "/internal/v1/phases/complete", "/internal/v1/batches/b1", "/healthz", "/x/y"]
)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(method=methods, path=paths, body=st.binary(max_size=300))
async def test_whatever_is_sent_one_line_tells_its_status(
    make_app: AppFactory, method: str, path: str, body: bytes
) -> None:
    app = make_app(MAX_REQUEST_BYTES=256)
    response, logs = await one_request(
        app,
        lambda client: client.open(
            path, method=method, data=body, headers={"Content-Type": "application/json"}
        ),
    )
    [line] = request_lines(logs)
    assert line["status"] == response.status_code
    assert line["correlation_id"] == response.headers["X-Correlation-ID"]
