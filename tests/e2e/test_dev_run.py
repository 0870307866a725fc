"""The README's way in: `make run` (bcs-dev, embedded broker) and `make demo` (bcs-demo)."""

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from batch_conductor_service.dev.embedded_broker import free_port
from tests.e2e.conftest import REPO_ROOT, RunningService, start_service, stop_if_running

BIN = Path(sys.executable).parent


@pytest.fixture
def dev_service(tmp_path: Path) -> Iterator[RunningService]:
    running = start_service(
        [str(BIN / "bcs-dev")], {"BCS_DEV_BROKER_PORT": "0"}, free_port(), tmp_path / "dev.log"
    )
    yield running
    stop_if_running(running)


def broker_address(service: RunningService) -> str:
    for line in service.log_lines():
        if line.get("event") == "embedded_broker_started":
            address: str = line["bootstrap_servers"]
            return address
    raise AssertionError("bcs-dev did not log the embedded broker's address")


def accepts_connections(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def test_dev_run_serves_with_embedded_broker_and_memory_state(
    dev_service: RunningService,
) -> None:
    events = {line.get("event") for line in dev_service.log_lines()}
    assert {"embedded_broker_started", "in_memory_repository_selected"} <= events
    status, _, body = dev_service.request("GET", "/healthz")
    checks = json.loads(body)["checks"]
    assert status == 200
    assert checks["repository"]["backend"] == "memory"
    assert "kafka_consumer" in checks


def test_demo_events_prune_spellcheck_then_sigterm_stops_broker_and_service(
    dev_service: RunningService,
) -> None:
    address = broker_address(dev_service)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BCS_")}
    demo = subprocess.run(
        [str(BIN / "bcs-demo")],
        env={**env, "BCS_KAFKA_BOOTSTRAP_SERVERS": address, "BCS_DEMO_URL": dev_service.base_url},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "final_pipeline:   ['spellcheck', 'cj_assessment']" in demo.stdout
    assert "final_pipeline:   ['cj_assessment']" in demo.stdout
    assert "Pruned spellcheck: all 3 essays on the roster finished" in demo.stdout

    assert dev_service.stop() == 0
    assert not accepts_connections(address)
