"""The alert rules and the dashboard against a running service's own /metrics."""

import asyncio
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from batch_conductor_service.dev.embedded_broker import free_port
from tests.e2e.conftest import RunningService, start_service, stop_if_running
from tests.e2e.test_hostile_partition import DATABASE_URL, REDIS_URL, drop_schema, remove_keys
from tests.unit.test_observability_files import selected_but_absent


@pytest.fixture
def stores_service(tmp_path: Path) -> Iterator[RunningService]:
    """On Redis and PostgreSQL (each with its circuit breaker), Kafka's consumer off."""
    schema = f"bcs_e2e_{uuid.uuid4().hex[:10]}"
    prefix = f"bcs-e2e-{uuid.uuid4().hex[:8]}"
    running = start_service(
        [sys.executable, "-m", "batch_conductor_service"],
        {
            "BCS_KAFKA_CONSUMER_ENABLED": "false",
            "BCS_REDIS_URL": REDIS_URL,
            "BCS_REDIS_KEY_PREFIX": prefix,
            "BCS_DATABASE_URL": DATABASE_URL,
            "BCS_DATABASE_SCHEMA": schema,
        },
        free_port(),
        tmp_path / "service.log",
    )
    yield running
    stop_if_running(running)
    asyncio.run(drop_schema(schema))
    asyncio.run(remove_keys(prefix))


def test_every_series_the_rules_and_dashboard_select_is_served_from_start_up(
    stores_service: RunningService,
) -> None:
    status, _, body = stores_service.request("GET", "/metrics")
    assert status == 200
    assert selected_but_absent(body.decode()) == set()
