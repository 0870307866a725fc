from prometheus_client import CollectorRegistry
from quart.typing import TestClientProtocol as Client

from batch_conductor_service.metrics import BcsMetrics


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
    assert "bcs_consumer_stalled_seconds 0.0" in body
