"""The README's way in: `make run` (bcs-dev, embedded broker) and `make demo` (bcs-demo)."""

import asyncio
import json
import os
import shutil
import signal
import socket
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from batch_conductor_service.dev.embedded_broker import free_port
from tests.conftest import service_missing
from tests.e2e.conftest import (
    BIN,
    REPO_ROOT,
    RunningService,
    run_tool,
    start_service,
    stop_if_running,
)


def dev_state(service: RunningService) -> dict[str, object]:
    state_file = service.log_path.parent / "bcs-dev.json"
    loaded: dict[str, object] = json.loads(state_file.read_text())
    return loaded


def accepts_connections(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def process_is_gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    # A zombie has exited; only its parent's wait() is missing.
    return "\nState:\tZ" in status


def wait_for_consumer_running(service: RunningService) -> None:
    for _ in range(600):
        _, _, body = service.request("GET", "/healthz")
        if json.loads(body)["checks"]["kafka_consumer"]["state"] == "running":
            return
        time.sleep(0.1)
    raise AssertionError("the consumer did not join its group within a minute")


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
    # The first lines tell a newcomer where the service is and how to reach the bcs command.
    output = dev_service.log_path.read_text()
    (line,) = [line for line in output.splitlines() if line.startswith("bcs-dev: ")]
    broker = str(dev_state(dev_service)["bootstrap_servers"])
    assert line.startswith(f"bcs-dev: starting the service on {dev_service.base_url} ")
    # The README shows the same line, with the default ports.
    as_in_readme = line.replace(dev_service.base_url, "http://127.0.0.1:4002").replace(
        broker, "127.0.0.1:19092"
    )
    assert as_in_readme in (REPO_ROOT / "README.md").read_text()


def test_demo_finds_the_broker_bcs_dev_started_and_prunes_spellcheck(
    dev_service: RunningService, tmp_path: Path
) -> None:
    # No broker address and no URL given: the demo reads them from bcs-dev's state file.
    demo = run_tool([str(BIN / "bcs-demo")], {"BCS_DEV_STATE_FILE": str(tmp_path / "bcs-dev.json")})
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert f"broker {dev_state(dev_service)['bootstrap_servers']}" in demo.stdout
    assert "final_pipeline:   ['spellcheck', 'cj_assessment']" in demo.stdout
    assert "final_pipeline:   ['cj_assessment']" in demo.stdout
    assert "Pruned spellcheck: all 3 essays on the roster finished" in demo.stdout


@pytest.mark.parametrize("when", ["consumer running", "consumer still joining its group"])
def test_ctrl_c_stops_the_service_then_the_broker_without_errors(
    dev_service: RunningService, tmp_path: Path, when: str
) -> None:
    address = str(dev_state(dev_service)["bootstrap_servers"])
    if when == "consumer running":
        wait_for_consumer_running(dev_service)
    # Ctrl-C in a terminal signals the whole foreground process group.
    os.killpg(dev_service.process.pid, signal.SIGINT)
    assert dev_service.process.wait(timeout=60) == 0
    lines = dev_service.log_lines()
    events = [line.get("event") for line in lines]
    assert "consumer_closed" in events
    assert events.index("consumer_closed") < events.index("embedded_broker_stopped")
    assert [line for line in lines if line.get("level") in ("error", "critical")] == []
    assert not accepts_connections(address)
    assert not (tmp_path / "bcs-dev.json").exists()


def test_a_quick_restart_gets_the_same_broker_port_and_the_demo_works(tmp_path: Path) -> None:
    broker_port = free_port()
    env = {"BCS_DEV_BROKER_PORT": str(broker_port), "BCS_DEV_STATE_FILE": str(tmp_path / "s")}
    for run in ("first", "second"):
        service = start_service([str(BIN / "bcs-dev")], env, free_port(), tmp_path / f"{run}.log")
        try:
            assert json.loads((tmp_path / "s").read_text())["bootstrap_servers"] == (
                f"127.0.0.1:{broker_port}"
            )
            demo = run_tool([str(BIN / "bcs-demo")], {"BCS_DEV_STATE_FILE": str(tmp_path / "s")})
            assert demo.returncode == 0, demo.stdout + demo.stderr
            # The first run's connections leave the broker's port in TIME-WAIT.
            os.killpg(service.process.pid, signal.SIGINT)
            assert service.process.wait(timeout=60) == 0
        finally:
            stop_if_running(service)


def test_a_killed_bcs_dev_leaves_no_broker_behind(dev_service: RunningService) -> None:
    broker_pid = dev_state(dev_service)["broker_pid"]
    assert isinstance(broker_pid, int)
    assert not process_is_gone(broker_pid)
    # SIGKILL to bcs-dev alone (not its group): nothing of it can clean up, the kernel must.
    dev_service.process.kill()
    dev_service.process.wait(10)
    for _ in range(200):
        if process_is_gone(broker_pid):
            break
        time.sleep(0.05)
    assert process_is_gone(broker_pid)


def test_a_second_bcs_dev_on_the_taken_port_leaves_the_first_ones_state_file(
    dev_service: RunningService, tmp_path: Path
) -> None:
    """A second `make run` while one runs: it fails on the port, and `make demo` still finds
    the first one."""
    state_file = tmp_path / "bcs-dev.json"
    first = state_file.read_text()
    port = dev_service.base_url.rsplit(":", 1)[1]
    second = run_tool(
        [str(BIN / "bcs-dev")],
        {
            "BCS_DEV_BROKER_PORT": "0",
            "BCS_DEV_STATE_FILE": str(state_file),
            "BCS_HTTP_HOST": "127.0.0.1",
            "BCS_HTTP_PORT": port,
        },
    )
    assert second.returncode == 2
    assert f"bcs: port {port} is already in use" in second.stderr
    assert state_file.read_text() == first
    demo = run_tool([str(BIN / "bcs-demo")], {"BCS_DEV_STATE_FILE": str(state_file)})
    assert demo.returncode == 0, demo.stdout + demo.stderr


DATABASE_URL = os.environ.get("BCS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def drop_schema(schema: str) -> None:
    connection = await asyncpg.connect(DATABASE_URL)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


@pytest.mark.parametrize("stores", ["redis", "redis+postgresql"])
def test_the_demo_says_at_once_that_the_store_is_down(tmp_path: Path, stores: str) -> None:
    """With Redis gone, the demo used to wait its full minute for events nobody could store
    (with PostgreSQL, /define still answered) and then blame the consumer."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("the redis-server binary")
        return
    # Imported here: the class lives beside the store tests' fixtures.
    from tests.integration.stores.conftest import OwnRedisServer

    redis = OwnRedisServer(binary, tmp_path)
    redis.start()
    schema = f"bcs_demo_{uuid.uuid4().hex[:10]}"
    env = {
        "BCS_DEV_BROKER_PORT": "0",
        "BCS_DEV_STATE_FILE": str(tmp_path / "bcs-dev.json"),
        "BCS_REDIS_URL": redis.url,
    }
    if stores == "redis+postgresql":
        env |= {"BCS_DATABASE_URL": DATABASE_URL, "BCS_DATABASE_SCHEMA": schema}
    service = start_service([str(BIN / "bcs-dev")], env, free_port(), tmp_path / "dev.log")
    try:
        redis.stop()
        demo = run_tool([str(BIN / "bcs-demo")], {"BCS_DEV_STATE_FILE": env["BCS_DEV_STATE_FILE"]})
    finally:
        stop_if_running(service)
        redis.stop()
        if stores == "redis+postgresql":
            asyncio.run(drop_schema(schema))
    assert demo.returncode == 1
    (line,) = demo.stderr.splitlines()
    assert line.startswith("bcs-demo: the service cannot store events: its store is down: redis (")
    assert "Connection refused" in line
    assert line.endswith(f"; see {service.base_url}/healthz")


def test_a_refused_define_is_shown_in_the_services_own_words(tmp_path: Path) -> None:
    """Not "is the service running?": it is, and says why it refuses."""
    service = start_service(
        [str(BIN / "bcs")],
        {
            "BCS_USE_MOCK_REPOSITORY": "true",
            "BCS_KAFKA_CONSUMER_ENABLED": "false",
            "BCS_INTERNAL_API_KEY": "the-service-key",
        },
        free_port(),
        tmp_path / "service.log",
    )
    try:
        demo = run_tool(
            [str(BIN / "bcs-demo")],
            {"BCS_DEMO_URL": service.base_url, "BCS_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
        )
    finally:
        stop_if_running(service)
    assert demo.returncode == 1
    (line,) = demo.stderr.splitlines()
    assert line.startswith(
        f"bcs-demo: {service.base_url}/internal/v1/pipelines/define answered 401 unauthorized: "
    )
