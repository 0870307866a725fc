import platform
from importlib.metadata import version

import prometheus_client
from prometheus_client import CollectorRegistry
from quart.typing import TestClientProtocol as Client

from batch_conductor_service.metrics import BcsMetrics
from tests.unit.conftest import AppFactory
from tests.unit.test_observability_files import selected_but_absent


def test_the_consumer_state_is_read_at_each_scrape() -> None:
    registry = CollectorRegistry()
    state = ["running", 0.0]
    BcsMetrics(registry).track_consumer(
        lambda: (str(state[0]), float(state[1])), ["running", "retrying", "dead"]
    )

    def sample(name: str, labels: dict[str, str] | None = None) -> float | None:
        return registry.get_sample_value(name, labels or {})

    assert sample("bcs_consumer_state", {"state": "running"}) == 1.0
    assert sample("bcs_consumer_state", {"state": "dead"}) == 0.0
    assert sample("bcs_consumer_stalled_seconds") == 0.0
    state[:] = ["dead", 42.0]
    assert sample("bcs_consumer_state", {"state": "running"}) == 0.0
    assert sample("bcs_consumer_state", {"state": "dead"}) == 1.0
    assert sample("bcs_consumer_stalled_seconds") == 42.0


async def test_the_service_exports_its_consumer_state(client: Client) -> None:
    await client.get("/healthz")
    body = (await (await client.get("/metrics")).get_data()).decode()
    assert 'bcs_consumer_state{state="disabled"} 1.0' in body
    assert 'bcs_consumer_state{state="dead"} 0.0' in body
    # Every state at zero from start-up, the broker's silence too: its alert sees it at once.
    assert 'bcs_consumer_state{state="broker_unreachable"} 0.0' in body
    assert "bcs_consumer_stalled_seconds 0.0" in body


async def metrics_at_start_up(make_app: AppFactory) -> str:
    app = make_app(registry=CollectorRegistry())
    async with app.test_app():
        return (await (await app.test_client().get("/metrics")).get_data()).decode()


async def test_every_series_the_rules_and_dashboard_select_is_there_from_start_up(
    make_app: AppFactory,
) -> None:
    # At zero until its first event: rate() and increase() then count that event, and the
    # dashboard shows the series. The in-memory store has no circuit breaker (the live test
    # runs on Redis and PostgreSQL, which have).
    assert selected_but_absent(await metrics_at_start_up(make_app)) == {"bcs_circuit_breaker_open"}


async def test_the_standard_collectors_and_the_build_are_on_the_services_registry(
    make_app: AppFactory,
) -> None:
    body = await metrics_at_start_up(make_app)
    for family in ("process_cpu_seconds_total", "python_info", "python_gc_collections_total"):
        assert f"\n{family}" in body, family
    installed = version("huleedu-batch-conductor-service")
    labels = f'python_version="{platform.python_version()}",version="{installed}"'
    assert f"bcs_build_info{{{labels}}} 1.0" in body
    # Not the process-wide default registry: each app (and test) has its own.
    assert "bcs_build" not in {family.name for family in prometheus_client.REGISTRY.collect()}
