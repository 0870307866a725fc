import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


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


@pytest.mark.parametrize(
    ("variable", "value"),
    [("BCS_HTTP_PORT", "abc"), ("BCS_ENVIRONMENT", "staging"), ("BCS_LOG_LEVEL", "chatty")],
)
def test_invalid_setting_stops_start_up_with_one_line_naming_it(variable: str, value: str) -> None:
    result = run_bcs({variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"bcs: invalid setting {variable}=")


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
            "BCS_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
            "BCS_DATABASE_TIMEOUT_SECONDS": "1",
        }
    )
    assert result.returncode == 1
    assert result.stderr.startswith("bcs: start-up failed:")
    assert "cannot connect to the PostgreSQL of BCS_DATABASE_URL" in result.stderr
    assert "postgres@127.0.0.1" not in result.stderr
