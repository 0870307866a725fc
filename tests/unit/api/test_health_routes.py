from prometheus_client import CollectorRegistry
from quart.typing import TestClientProtocol as Client

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


def request_series(registry: CollectorRegistry) -> set[tuple[tuple[str, str], ...]]:
    return {
        tuple(sorted(sample.labels.items()))
        for family in registry.collect()
        if family.name == "http_requests"
        for sample in family.samples
        if sample.name == "http_requests_total"
    }


async def test_random_methods_add_no_series_beyond_other(make_app: AppFactory) -> None:
    registry = CollectorRegistry()
    app = make_app(registry=registry)
    async with app.test_app():
        # The routes' own series exist from start-up (at zero); requests add to those only.
        at_start = request_series(registry)
        client = app.test_client()
        for i in range(300):
            await client.open("/healthz", method=f"M{i}X")
            await client.open(f"/random/{i}", method="GET")
    added = request_series(registry) - at_start
    methods = {dict(labels)["method"] for labels in added}
    endpoints = {dict(labels)["endpoint"] for labels in added}
    assert methods == {"GET", "other"}
    assert endpoints <= {"/healthz", "unmatched"}
    assert len(added) <= 4
