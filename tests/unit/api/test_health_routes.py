from dataclasses import dataclass
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from quart.typing import TestClientProtocol as Client

from batch_conductor_service.consumer.health import ConsumerHealth, ConsumerPhase
from batch_conductor_service.domain.batch_state import ParkedResult
from batch_conductor_service.health import ComponentHealth, HealthState, Serving
from batch_conductor_service.protocols import EssayPlacementProtocol
from batch_conductor_service.wiring.app import create_app
from batch_conductor_service.wiring.providers import app_container
from tests.support.hypothesis_profiles import examples
from tests.unit.api.test_pipeline_routes import StoreDown
from tests.unit.conftest import AppFactory, repository_provider, unit_settings


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


# --- liveness and readiness ---------------------------------------------------------------


@dataclass
class StoresIn(StoreDown):
    """A repository whose stores report the given states (and reads fail: not asked here)."""

    states: dict[str, HealthState]

    async def health(self) -> dict[str, ComponentHealth]:
        return {name: ComponentHealth(state) for name, state in self.states.items()}


store_states = st.dictionaries(
    st.sampled_from(["redis", "postgresql", "repository"]),
    st.sampled_from(list(HealthState)),
    min_size=1,
)


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states=store_states)
async def test_readiness_follows_the_store_and_liveness_ignores_it(
    states: dict[str, HealthState],
) -> None:
    app = create_app(unit_settings(), providers=[repository_provider(StoresIn(states))])
    async with app.test_app():
        client = app.test_client()
        live = await client.get("/livez")
        ready = await client.get("/readyz")
    # A store outage is no reason to restart the process: liveness stays 200.
    assert live.status_code == 200
    assert await live.get_json() == {"status": "ok", "checks": {}}
    worst = next(s for s in ("unhealthy", "degraded", "ok") if HealthState(s) in states.values())
    assert ready.status_code == (503 if worst == "unhealthy" else 200)
    body = await ready.get_json()
    assert body["status"] == worst
    assert set(body["checks"]) == set(states)


async def test_readiness_and_health_both_503_when_the_store_is_down(make_app: AppFactory) -> None:
    app = make_app(providers=[repository_provider(StoreDown())])
    async with app.test_app():
        client = app.test_client()
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
        live = await client.get("/livez")
    assert (ready.status_code, health.status_code, live.status_code) == (503, 503, 200)
    assert (await ready.get_json())["checks"]["redis"]["error"] == "connection refused"


async def test_a_kafka_outage_leaves_the_replica_live_and_ready(make_app: AppFactory) -> None:
    app = make_app()
    async with app.test_app():
        consumer = await app_container(app).get(ConsumerHealth)
        consumer.failing(ConsumerPhase.RECONNECTING, "KafkaConnectionError: broker down")
        client = app.test_client()
        assert (await client.get("/livez")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200


async def test_liveness_fails_once_the_consumer_task_has_died(make_app: AppFactory) -> None:
    # Only a restart brings a dead consumer back: that is what liveness is for.
    app = make_app()
    async with app.test_app():
        consumer = await app_container(app).get(ConsumerHealth)
        consumer.phase = ConsumerPhase.DEAD
        consumer.error = "RuntimeError: bug"
        response = await app.test_client().get("/livez")
    assert response.status_code == 503
    body = await response.get_json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["kafka_consumer"]["state"] == "dead"


async def test_readiness_is_503_once_shutdown_has_begun_while_liveness_stays(
    make_app: AppFactory,
) -> None:
    # From the stop signal on: a load balancer sends the next request elsewhere, while the
    # requests in flight finish.
    app = make_app()
    async with app.test_app():
        client = app.test_client()
        assert (await client.get("/readyz")).status_code == 200
        (await app_container(app).get(Serving)).begin_shutdown()
        ready = await client.get("/readyz")
        live = await client.get("/livez")
        define = await client.post(
            "/internal/v1/pipelines/define", json={"batch_id": "b", "requested_pipeline": "nlp"}
        )
    assert ready.status_code == 503
    assert await ready.get_json() == {
        "status": "unhealthy",
        "checks": {"serving": {"status": "unhealthy", "state": "stopping"}},
    }
    assert (live.status_code, define.status_code) == (200, 200)
