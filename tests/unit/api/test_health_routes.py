from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from quart.typing import TestClientProtocol as Client

from batch_conductor_service.domain.batch_state import ParkedResult
from batch_conductor_service.protocols import EssayPlacementProtocol
from batch_conductor_service.wiring.providers import app_container
from tests.unit.api.test_pipeline_routes import StoreDown
from tests.unit.conftest import AppFactory, repository_provider


async def test_healthz_reports_each_dependency(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["repository"]["status"] == "ok"
    assert body["checks"]["pipeline_config"]["pipelines"] == [
        "ai_feedback",
        "cj_assessment",
        "comprehensive",
        "nlp",
    ]


async def test_healthz_is_503_when_the_store_is_unhealthy(make_app: AppFactory) -> None:
    app = make_app(providers=[repository_provider(StoreDown())])
    async with app.test_app():
        response = await app.test_client().get("/healthz")
    assert response.status_code == 503
    body = await response.get_json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["redis"] == {"status": "unhealthy", "error": "connection refused"}


async def test_metrics_expose_the_contract_metrics(make_app: AppFactory) -> None:
    app = make_app(registry=CollectorRegistry())
    async with app.test_app():
        client = app.test_client()
        await client.post(
            "/internal/v1/pipelines/define", json={"batch_id": "b", "requested_pipeline": "nlp"}
        )
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = (await response.get_data()).decode()
    assert 'bcs_pipeline_resolutions_total{status="success"} 1.0' in text
    assert (
        'http_requests_total{endpoint="/internal/v1/pipelines/define",method="POST",'
        'status_code="200"} 1.0'
    ) in text
    assert "http_request_duration_seconds_bucket" in text


async def test_unmatched_paths_are_counted_under_one_label(make_app: AppFactory) -> None:
    registry = CollectorRegistry()
    app = make_app(registry=registry)
    async with app.test_app():
        client = app.test_client()
        for path in ("/a", "/b", "/c"):
            assert (await client.get(path)).status_code == 404
    labels = {"method": "GET", "endpoint": "unmatched", "status_code": "404"}
    assert registry.get_sample_value("http_requests_total", labels) == 3


async def test_random_methods_add_no_series_beyond_other(make_app: AppFactory) -> None:
    registry = CollectorRegistry()
    app = make_app(registry=registry)
    async with app.test_app():
        client = app.test_client()
        for i in range(300):
            await client.open("/healthz", method=f"M{i}X")
            await client.open(f"/random/{i}", method="GET")
    series = {
        tuple(sorted(sample.labels.items()))
        for family in registry.collect()
        if family.name == "http_requests"
        for sample in family.samples
        if sample.name == "http_requests_total"
    }
    methods = {dict(labels)["method"] for labels in series}
    endpoints = {dict(labels)["endpoint"] for labels in series}
    assert methods == {"GET", "other"}
    assert endpoints <= {"/healthz", "unmatched"}
    assert len(series) <= 4


async def test_a_full_parking_lot_makes_healthz_degraded_not_down(make_app: AppFactory) -> None:
    app = make_app(MAX_PARKED_RESULTS=1)
    async with app.test_app():
        client = app.test_client()
        before = await (await client.get("/healthz")).get_json()
        placement = await app_container(app).get(EssayPlacementProtocol)
        parked = ParkedResult("ev1", "essay-1", "spellcheck", True, datetime.now(UTC))
        assert await placement.park([parked]) == []
        response = await client.get("/healthz")
    assert before["checks"]["parking"] == {
        "status": "ok",
        "parked_results": 0,
        "max_parked_results": 1,
    }
    assert response.status_code == 200
    body = await response.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["parking"] == {
        "status": "degraded",
        "parked_results": 1,
        "max_parked_results": 1,
        "full": True,
    }
