"""The installed entry points as processes: each answers --version and --help without
starting anything, and a start-up that cannot go on (a taken port, a pipelines file it cannot
use, an unreachable database, an OTLP protocol tracing cannot use) stops with its one line on
stderr and its exit status. tests/unit/wiring/test_entry_points.py checks the rest of what the
commands answer before starting, in process."""

import os
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMMANDS = {
    "python -m batch_conductor_service": [sys.executable, "-m", "batch_conductor_service"],
    "bcs": [str(BIN / "bcs")],
    "bcs-dev": [str(BIN / "bcs-dev")],
    "bcs-demo": [str(BIN / "bcs-demo")],
}


def run_bcs(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BCS_")}
    return subprocess.run(
        [sys.executable, "-m", "batch_conductor_service"],
        env={**clean, "BCS_USE_MOCK_REPOSITORY": "true", **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_command(
    command: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BCS_")}
    return subprocess.run(
        [*COMMANDS[command], *args],
        env={**clean, **(env or {})},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_entry_point_prints_the_installed_version(command: str) -> None:
    result = run_command(command, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    name = "bcs" if command.startswith("python") else command
    assert result.stdout == f"{name} {version('huleedu-batch-conductor-service')}\n"


def test_help_prints_usage_and_exits_without_starting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Were it to start, it would fail at once: the HTTP port is taken, the broker absent.
        result = run_command(
            "bcs",
            "--help",
            env={"BCS_HTTP_PORT": str(port), "BCS_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
        )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("usage: bcs ")
    for command_name in ("inspect", "dlq"):
        assert command_name in result.stdout


def test_an_otlp_protocol_tracing_cannot_use_stops_start_up_with_one_line_naming_it() -> None:
    result = run_bcs(
        {
            "BCS_HTTP_PORT": "0",
            "BCS_KAFKA_CONSUMER_ENABLED": "false",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        }
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("bcs: invalid setting OTEL_EXPORTER_OTLP_PROTOCOL='http/json'")


def test_unorderable_pipelines_file_stops_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "pipelines.yaml"
    bad.write_text(
        "pipelines:\n  p:\n    steps:\n"
        "      - {name: a, service_name: s, event_type: e, event_data_model: m, depends_on: [b]}\n"
        "      - {name: b, service_name: s, event_type: e, event_data_model: m, depends_on: [a]}\n"
    )
    result = run_bcs({"BCS_PIPELINES_PATH": str(bad), "BCS_HTTP_PORT": "0"})
    assert result.returncode == 1
    assert "invalid pipeline configuration" in result.stderr
    assert "dependency cycle: a -> b -> a" in result.stderr


def test_pipelines_file_without_a_step_that_events_report_stops_start_up(tmp_path: Path) -> None:
    no_cj = tmp_path / "pipelines.yaml"
    no_cj.write_text(
        "pipelines:\n  p:\n    steps:\n"
        "      - {name: spellcheck, service_name: s, event_type: e, event_data_model: m}\n"
    )
    result = run_bcs({"BCS_PIPELINES_PATH": str(no_cj), "BCS_HTTP_PORT": "0"})
    assert result.returncode == 1
    assert "invalid pipeline configuration" in result.stderr
    assert "no step 'cj_assessment', which CJ assessment completed and failed events" in (
        result.stderr
    )


def test_unreachable_database_stops_start_up_saying_why() -> None:
    result = run_bcs(
        {
            "BCS_USE_MOCK_REPOSITORY": "false",
            "BCS_KAFKA_CONSUMER_ENABLED": "false",
            "BCS_HTTP_PORT": "0",
            "BCS_DATABASE_URL": "postgresql://postgres:pw@127.0.0.1:1/none",
            "BCS_DATABASE_TIMEOUT_SECONDS": "1",
        }
    )
    assert result.returncode == 1
    # The one line; tests/e2e/test_store_unreachable_at_start.py has the rest.
    assert result.stderr == (
        "bcs: cannot reach PostgreSQL at postgresql://postgres:***@127.0.0.1:1/none "
        "(BCS_DATABASE_URL): Connection refused\n"
    )


def test_a_taken_port_is_one_line_naming_the_setting_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_bcs({"BCS_HTTP_HOST": "127.0.0.1", "BCS_HTTP_PORT": str(port)})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"bcs: port {port} is already in use (BCS_HTTP_PORT={port}); "
        "stop what listens there or choose another port"
    ]
    # Nothing started before the port was refused: no consumer, no store, no start-up log.
    assert "service_started" not in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("content", ["", "[]\n", "just words\n"])
def test_an_empty_or_wrong_shaped_pipelines_file_is_one_line_once(
    tmp_path: Path, content: str
) -> None:
    bad = tmp_path / "pipelines.yaml"
    bad.write_text(content)
    result = run_bcs({"BCS_PIPELINES_PATH": str(bad), "BCS_HTTP_PORT": "0"})
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"bcs: invalid pipeline configuration: {bad}: expected a mapping")
    assert "invalid_pipeline_configuration" not in result.stdout
