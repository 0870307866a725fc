import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry
from quart.typing import TestClientProtocol as Client

from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchChange,
    BatchCounts,
    StepOutcome,
)
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.health import ComponentHealth, HealthState
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.wiring.providers import app_container
from common_core.enums import BatchPhaseStatus
from huleedu_service_libs.logging_utils import configure_logging
from tests.unit.conftest import AppFactory, repository_provider

DEFINE = "/internal/v1/pipelines/define"


class StoreDown:
    async def counts(self, batch_id: str) -> BatchCounts:
        raise StateStoreUnavailableError("redis", "connection refused", retry_after_seconds=2.4)

    async def apply(self, changes: Sequence[BatchChange]) -> list[ApplyResult]:
        raise StateStoreUnavailableError("redis", "connection refused")

    async def health(self) -> dict[str, ComponentHealth]:
        return {"redis": ComponentHealth(HealthState.UNHEALTHY, {"error": "connection refused"})}


class Buggy(StoreDown):
    async def counts(self, batch_id: str) -> BatchCounts:
        raise KeyError("secret internal detail")


async def post_raw(client: Client, body: bytes) -> tuple[int, dict[str, object]]:
    response = await client.post(DEFINE, data=body, headers={"Content-Type": "application/json"})
    return response.status_code, json.loads(await response.get_data())


async def test_define_answers_with_the_contract_fields(client: Client) -> None:
    response = await client.post(
        DEFINE, json={"batch_id": "b1", "requested_pipeline": "cj_assessment"}
    )
    assert response.status_code == 200
    body = await response.get_json()
    assert body["batch_id"] == "b1"
    assert body["final_pipeline"] == ["spellcheck", "cj_assessment"]
    assert "Steps to run: spellcheck, cj_assessment." in body["analysis_summary"]
    assert body["stages"] == [["spellcheck"], ["cj_assessment"]]
    assert body["pruned_steps"] == []


async def test_unknown_extra_fields_are_ignored(client: Client) -> None:
    response = await client.post(
        DEFINE,
        json={
            "batch_id": "b1",
            "requested_pipeline": "nlp",
            "batch_metadata": {"course": "ENG5", "prompt_attached": True},
            "priority": "high",
            "client_version": 7,
        },
    )
    assert response.status_code == 200
    assert (await response.get_json())["final_pipeline"] == ["spellcheck", "nlp"]


async def test_completed_steps_are_pruned(make_app: AppFactory) -> None:
    app = make_app()
    async with app.test_app():
        repository = await app_container(app).get(BatchStateRepositoryProtocol)
        done = StepOutcome(BatchPhaseStatus.COMPLETED_SUCCESSFULLY, datetime.now(UTC))
        await repository.apply(
            [
                BatchChange(
                    "b1",
                    datetime.now(UTC),
                    event_id="ev1",
                    outcome_step="spellcheck",
                    outcome=done,
                )
            ]
        )
        response = await app.test_client().post(
            DEFINE, json={"batch_id": "b1", "requested_pipeline": "cj_assessment"}
        )
        body = await response.get_json()
    assert body["final_pipeline"] == ["cj_assessment"]
    assert body["pruned_steps"] == [
        {"step": "spellcheck", "reason": "batch-level outcome COMPLETED_SUCCESSFULLY"}
    ]


async def test_empty_pipeline_when_everything_is_done(make_app: AppFactory) -> None:
    app = make_app()
    async with app.test_app():
        repository = await app_container(app).get(BatchStateRepositoryProtocol)
        done = StepOutcome(BatchPhaseStatus.COMPLETED_WITH_FAILURES, datetime.now(UTC))
        await repository.apply(
            [
                BatchChange(
                    "b1",
                    datetime.now(UTC),
                    event_id=f"ev-{step}",
                    outcome_step=step,
                    outcome=done,
                )
                for step in ("spellcheck", "nlp")
            ]
        )
        response = await app.test_client().post(
            DEFINE, json={"batch_id": "b1", "requested_pipeline": "nlp"}
        )
    assert response.status_code == 200
    body = await response.get_json()
    assert body["final_pipeline"] == []
    assert "nothing to run" in body["analysis_summary"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[1, 2]", "invalid_request"),
        (b'"a string"', "invalid_request"),
        (b"null", "invalid_request"),
    ],
)
async def test_body_that_is_not_a_json_object_is_a_400(
    client: Client, body: bytes, error: str
) -> None:
    status, payload = await post_raw(client, body)
    assert status == 400
    assert payload["error"] == error


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"batch_id", "requested_pipeline"}),
        ({"batch_id": "   ", "requested_pipeline": "nlp"}, {"batch_id"}),
        ({"batch_id": "b" * 256, "requested_pipeline": "nlp"}, {"batch_id"}),
        ({"batch_id": "b1", "requested_pipeline": "x" * 101}, {"requested_pipeline"}),
        ({"batch_id": 5, "requested_pipeline": ["nlp"]}, {"batch_id", "requested_pipeline"}),
        ({"batch_id": "b1", "requested_pipeline": "nlp", "batch_metadata": 3}, {"batch_metadata"}),
    ],
)
async def test_invalid_fields_are_a_400_listing_each_field(
    client: Client, body: dict[str, object], fields: set[str]
) -> None:
    response = await client.post(DEFINE, json=body)
    assert response.status_code == 400
    payload = await response.get_json()
    assert payload["error"] == "validation_failed"
    assert {item["field"] for item in payload["detail"]} == fields


async def test_unknown_pipeline_is_a_400_naming_the_known_ones(client: Client) -> None:
    response = await client.post(DEFINE, json={"batch_id": "b1", "requested_pipeline": "grammar"})
    assert response.status_code == 400
    payload = await response.get_json()
    assert payload["error"] == "unknown_pipeline"
    assert payload["detail"]["known_pipelines"] == [
        "ai_feedback",
        "cj_assessment",
        "comprehensive",
        "nlp",
    ]
    assert payload["detail"]["known_steps"] == ["ai_feedback", "cj_assessment", "nlp", "spellcheck"]


async def test_body_over_the_limit_is_a_413(make_app: AppFactory) -> None:
    app = make_app(MAX_REQUEST_BYTES=1024)
    async with app.test_app():
        body = json.dumps({"batch_id": "b1", "requested_pipeline": "nlp", "pad": "x" * 2000})
        status, payload = await post_raw(app.test_client(), body.encode())
    assert status == 413
    assert payload["error"] == "request_too_large"


async def test_store_down_is_a_503_with_retry_after(make_app: AppFactory) -> None:
    app = make_app(providers=[repository_provider(StoreDown())])
    async with app.test_app():
        response = await app.test_client().post(
            DEFINE, json={"batch_id": "b1", "requested_pipeline": "nlp"}
        )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert (await response.get_json())["error"] == "state_store_unavailable"


async def test_a_bug_is_a_500_without_a_stack_trace(make_app: AppFactory) -> None:
    app = make_app(providers=[repository_provider(Buggy())])
    async with app.test_app():
        response = await app.test_client().post(
            DEFINE, json={"batch_id": "b1", "requested_pipeline": "nlp"}
        )
    assert response.status_code == 500
    text = (await response.get_data()).decode()
    assert json.loads(text) == {"error": "internal_error", "detail": "an unexpected error occurred"}
    assert "secret internal detail" not in text
    assert "Traceback" not in text


async def test_a_bug_is_counted_as_a_failed_resolution(make_app: AppFactory) -> None:
    registry = CollectorRegistry()
    app = make_app(providers=[repository_provider(Buggy())], registry=registry)
    async with app.test_app():
        await app.test_client().post(DEFINE, json={"batch_id": "b1", "requested_pipeline": "nlp"})
    assert registry.get_sample_value("bcs_pipeline_resolutions_total", {"status": "failure"}) == 1


async def test_correlation_id_from_the_body_wins_and_is_echoed(client: Client) -> None:
    response = await client.post(
        DEFINE,
        json={"batch_id": "b1", "requested_pipeline": "nlp", "correlation_id": "from-body"},
        headers={"X-Correlation-ID": "from-header"},
    )
    assert response.headers["X-Correlation-ID"] == "from-body"


async def test_correlation_id_header_is_echoed(client: Client) -> None:
    response = await client.post(
        DEFINE,
        json={"batch_id": "b1", "requested_pipeline": "nlp"},
        headers={"X-Correlation-ID": "from-header"},
    )
    assert response.headers["X-Correlation-ID"] == "from-header"


async def test_a_new_correlation_id_is_made_when_none_is_given(client: Client) -> None:
    response = await client.post(DEFINE, json={"batch_id": "b1", "requested_pipeline": "nlp"})
    uuid.UUID(response.headers["X-Correlation-ID"])


async def test_every_log_line_of_a_request_carries_its_correlation_id(
    client: Client, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("INFO")
    await client.post(
        DEFINE, json={"batch_id": "b1", "requested_pipeline": "nlp", "correlation_id": "corr-7"}
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert lines
    for line in lines:
        assert line["correlation_id"] == "corr-7", line["event"]
    assert [line["event"] for line in lines] == ["http_request"]


async def test_resolutions_are_counted_by_status(make_app: AppFactory) -> None:
    registry = CollectorRegistry()
    app = make_app(registry=registry)
    async with app.test_app():
        client = app.test_client()
        await client.post(DEFINE, json={"batch_id": "b1", "requested_pipeline": "nlp"})
        await client.post(DEFINE, json={"batch_id": "b1", "requested_pipeline": "nope"})
    assert registry.get_sample_value("bcs_pipeline_resolutions_total", {"status": "success"}) == 1
    unknown = {"status": "unknown_pipeline"}
    assert registry.get_sample_value("bcs_pipeline_resolutions_total", unknown) == 1
    labels = {"method": "POST", "endpoint": DEFINE, "status_code": "400"}
    assert registry.get_sample_value("http_requests_total", labels) == 1


async def test_unknown_pipeline_is_refused_without_reading_the_store(make_app: AppFactory) -> None:
    app = make_app(providers=[repository_provider(StoreDown())])
    async with app.test_app():
        response = await app.test_client().post(
            DEFINE, json={"batch_id": "b1", "requested_pipeline": "grammar"}
        )
    assert response.status_code == 400


@pytest.mark.parametrize("supplied", ["bad\nid", "x" * 300, "caf\u00e9", "  "])
async def test_an_unusable_correlation_id_is_replaced_not_fatal(
    client: Client, supplied: str
) -> None:
    response = await client.post(
        DEFINE, json={"batch_id": "b1", "requested_pipeline": "nlp", "correlation_id": supplied}
    )
    assert response.status_code == 200
    uuid.UUID(response.headers["X-Correlation-ID"])


async def test_an_unusable_correlation_header_is_replaced(client: Client) -> None:
    response = await client.post(
        DEFINE,
        json={"batch_id": "b1", "requested_pipeline": "nlp"},
        headers={"X-Correlation-ID": "x" * 300},
    )
    assert response.status_code == 200
    uuid.UUID(response.headers["X-Correlation-ID"])
