"""The current platform's HTTP conventions: POST /internal/v1/phases/complete, preconditions
from pipelines.yaml (prompt_attached), and the internal API key."""

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from quart.typing import TestClientProtocol as Client
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from batch_conductor_service.domain.pipelines_file import parse_pipelines
from batch_conductor_service.domain.step_graph import PipelineConfigError
from batch_conductor_service.wiring.app import create_app
from tests.support.hypothesis_profiles import examples
from tests.unit.api.test_pipeline_routes import StoreDown
from tests.unit.conftest import AppFactory, repository_provider, unit_settings

DEFINE = "/internal/v1/pipelines/define"
COMPLETE = "/internal/v1/phases/complete"


async def define(client: Client, pipeline: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    body = {"batch_id": "b1", "requested_pipeline": pipeline, **extra}
    response = await client.post(DEFINE, json=body)
    return response.status_code, await response.get_json()


# --- POST /internal/v1/phases/complete ---------------------------------------------------


async def test_a_successful_phase_report_completes_the_step(client: Client) -> None:
    response = await client.post(
        COMPLETE, json={"batch_id": "b1", "phase_name": "spellcheck", "success": True}
    )
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "recorded"
    assert (body["batch_id"], body["phase_name"], body["success"]) == ("b1", "spellcheck", True)
    assert (await define(client, "cj_assessment"))[1]["final_pipeline"] == ["cj_assessment"]


async def test_a_failed_phase_report_leaves_the_step_to_run(client: Client) -> None:
    await client.post(COMPLETE, json={"batch_id": "b1", "phase_name": "spellcheck"})
    response = await client.post(
        COMPLETE, json={"batch_id": "b1", "phase_name": "spellcheck", "success": False}
    )
    assert response.status_code == 200
    _, body = await define(client, "cj_assessment")
    assert body["final_pipeline"] == ["spellcheck", "cj_assessment"]


async def test_a_repeated_report_changes_nothing(client: Client) -> None:
    report = {"batch_id": "b1", "phase_name": "spellcheck", "success": True}
    first = await client.post(COMPLETE, json=report)
    again = await client.post(COMPLETE, json=report)
    assert (first.status_code, again.status_code) == (200, 200)
    assert (await define(client, "cj_assessment"))[1]["final_pipeline"] == ["cj_assessment"]


async def test_the_latest_of_contrary_reports_decides(client: Client) -> None:
    for success in (True, False, True):
        report = {"batch_id": "b1", "phase_name": "spellcheck", "success": success}
        assert (await client.post(COMPLETE, json=report)).status_code == 200
    assert (await define(client, "cj_assessment"))[1]["final_pipeline"] == ["cj_assessment"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"batch_id": "b1", "phase_name": "grammar"}, "unknown_phase"),
        ({"batch_id": "b1"}, "validation_failed"),
        ({"phase_name": "nlp"}, "validation_failed"),
        ({"batch_id": "b1", "phase_name": "nlp", "success": "yes"}, "validation_failed"),
        ({"batch_id": "", "phase_name": "nlp"}, "validation_failed"),
        (["b1", "nlp"], "invalid_request"),
    ],
)
async def test_a_bad_phase_report_is_a_400(client: Client, body: Any, error: str) -> None:
    response = await client.post(COMPLETE, json=body)
    assert response.status_code == 400
    assert (await response.get_json())["error"] == error


async def test_a_phase_report_that_is_not_json_is_a_400(client: Client) -> None:
    response = await client.post(COMPLETE, data=b"{oops", headers={"Content-Type": "text/plain"})
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_json"


async def test_a_phase_report_while_the_store_is_down_is_a_503(make_app: AppFactory) -> None:
    app = make_app(providers=[repository_provider(StoreDown())])  # type: ignore[arg-type]
    async with app.test_app():
        response = await app.test_client().post(
            COMPLETE, json={"batch_id": "b1", "phase_name": "nlp", "success": True}
        )
    assert response.status_code == 503
    assert "Retry-After" in response.headers


# --- preconditions from pipelines.yaml ---------------------------------------------------


@pytest.mark.parametrize("pipeline", ["ai_feedback", "cj_assessment", "nlp"])
@pytest.mark.parametrize(
    ("metadata", "why"),
    [({}, "missing"), ({"prompt_attached": False}, "is False"), ({"prompt_attached": 0}, "is 0")],
)
async def test_the_shipped_pipelines_need_a_prompt_when_metadata_is_sent(
    client: Client, pipeline: str, metadata: dict[str, Any], why: str
) -> None:
    status, body = await define(client, pipeline, batch_metadata=metadata)
    assert status == 400
    assert body["error"] == "precondition_failed"
    assert body["detail"]["flags"] == ["prompt_attached"]
    assert f"batch_metadata.prompt_attached ({why})" in body["detail"]["message"]


@pytest.mark.parametrize("flag", [True, "yes", 1])
async def test_a_truthy_prompt_flag_passes(client: Client, flag: object) -> None:
    metadata = {"prompt_attached": flag, "prompt_source": "cms"}
    status, body = await define(client, "ai_feedback", batch_metadata=metadata)
    assert status == 200
    assert body["final_pipeline"] == ["spellcheck", "nlp", "ai_feedback"]


async def test_a_request_without_metadata_is_answered_as_before(client: Client) -> None:
    status, body = await define(client, "cj_assessment")
    assert (status, body["final_pipeline"]) == (200, ["spellcheck", "cj_assessment"])


async def test_pipelines_without_preconditions_ignore_the_flag(client: Client) -> None:
    for pipeline in ("comprehensive", "spellcheck"):
        status, _ = await define(client, pipeline, batch_metadata={"prompt_attached": False})
        assert status == 200, pipeline


async def test_refusals_are_counted(make_app: AppFactory) -> None:
    registry = CollectorRegistry()
    app = make_app(registry=registry)
    async with app.test_app():
        await define(app.test_client(), "nlp", batch_metadata={})
    labels = {"status": "precondition_failed"}
    assert registry.get_sample_value("bcs_pipeline_resolutions_total", labels) == 1


def test_a_pipeline_may_declare_any_flag_and_a_blank_one_is_refused() -> None:
    text = """
pipelines:
  p:
    steps: [{name: a, service_name: s, event_type: e, event_data_model: m}]
    requires_batch_metadata: [teacher_approved]
"""
    assert parse_pipelines(text).preconditions == {"p": ("teacher_approved",)}
    with pytest.raises(PipelineConfigError, match="flag"):
        parse_pipelines(text.replace("teacher_approved", "' '"))


# --- the internal API key ----------------------------------------------------------------


@pytest.fixture
async def guarded(make_app: AppFactory) -> Any:
    registry = CollectorRegistry()
    app = make_app(registry=registry, INTERNAL_API_KEY="s3cret")
    async with app.test_app():
        yield app.test_client(), registry


async def test_with_a_key_set_internal_routes_need_it(guarded: Any) -> None:
    client, registry = guarded
    report = {"batch_id": "b1", "phase_name": "nlp"}
    for headers, reason in (({}, "missing"), ({"X-Internal-API-Key": "wrong"}, "invalid")):
        for path, body in (
            (DEFINE, {"batch_id": "b1", "requested_pipeline": "nlp"}),
            (COMPLETE, report),
        ):
            response = await client.post(path, json=body, headers=headers)
            assert response.status_code == 401, (path, reason)
            assert (await response.get_json())["error"] == "unauthorized"
        response = await client.get("/internal/v1/batches/b1", headers=headers)
        assert response.status_code == 401
        counted = registry.get_sample_value("bcs_internal_auth_failures_total", {"reason": reason})
        assert counted == 3


async def test_the_right_key_passes_and_the_callers_service_id_is_logged(guarded: Any) -> None:
    client, _ = guarded
    headers = {"X-Internal-API-Key": "s3cret", "X-Service-ID": "batch-orchestrator-service"}
    with capture_logs(processors=[merge_contextvars]) as logs:
        response = await client.post(
            DEFINE, json={"batch_id": "b1", "requested_pipeline": "spellcheck"}, headers=headers
        )
    assert response.status_code == 200
    [requested] = [line for line in logs if line["event"] == "http_request"]
    assert requested["caller_service"] == "batch-orchestrator-service"


async def test_a_refusal_names_the_caller_in_its_log_line(guarded: Any) -> None:
    client, _ = guarded
    with capture_logs() as logs:
        await client.post(COMPLETE, json={}, headers={"X-Service-ID": "rogue-service"})
    [refusal] = [line for line in logs if line["event"] == "internal_api_key_refused"]
    assert refusal["caller_service"] == "rogue-service"


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/livez",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/docs/swagger-ui-bundle.js",
    ],
)
async def test_probes_and_scrapers_need_no_key(guarded: Any, path: str) -> None:
    client, _ = guarded
    response = await client.get(path)
    assert response.status_code in (200, 503)


async def test_without_a_key_nothing_is_required(client: Client) -> None:
    status, _ = await define(client, "spellcheck")
    assert status == 200


async def test_a_deployment_with_the_platforms_key_answers_bos_and_says_why_once(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The platform's BOS sends BCS no X-Internal-API-Key.
    monkeypatch.setenv("HULEEDU_INTERNAL_API_KEY", "platform-secret")
    monkeypatch.delenv("BCS_INTERNAL_API_KEY", raising=False)
    app = make_app()
    with capture_logs() as logs:
        async with app.test_app():
            status, _ = await define(app.test_client(), "spellcheck")
    assert status == 200
    [said] = [line for line in logs if line["event"] == "platform_internal_api_key_ignored"]
    assert said["variable"] == "HULEEDU_INTERNAL_API_KEY"
    assert "BOS" in said["reason"]
    assert "platform-secret" not in repr(logs)


async def test_without_the_platforms_key_nothing_is_said_about_it(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HULEEDU_INTERNAL_API_KEY", raising=False)
    with capture_logs() as logs:
        async with make_app().test_app():
            pass
    assert not [line for line in logs if line["event"] == "platform_internal_api_key_ignored"]


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30))
async def test_a_key_sent_as_utf8_passes_whatever_its_script(key: str) -> None:
    assume(key == key.strip())
    # Quart's test client sends headers as UTF-8, as a client like curl or BOS does; the
    # server decodes them as Latin-1.
    app = create_app(unit_settings(INTERNAL_API_KEY=key), registry=CollectorRegistry())
    async with app.test_app():
        client = app.test_client()
        right = await client.get("/internal/v1/batches/b1", headers={"X-Internal-API-Key": key})
        wrong = await client.get(
            "/internal/v1/batches/b1", headers={"X-Internal-API-Key": key + "x"}
        )
    assert right.status_code == 404
    assert wrong.status_code == 401


async def test_a_non_latin1_key_passes(make_app: AppFactory) -> None:
    app = make_app(INTERNAL_API_KEY="sécret-ключ")
    async with app.test_app():
        response = await app.test_client().post(
            DEFINE,
            json={"batch_id": "b1", "requested_pipeline": "nlp"},
            headers={"X-Internal-API-Key": "sécret-ключ"},
        )
    assert response.status_code == 200
