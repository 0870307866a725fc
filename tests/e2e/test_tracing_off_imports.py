"""With tracing off, building the app loads neither the OpenTelemetry SDK's tracing nor any
instrumentation or exporter: checked in a fresh interpreter, whose modules are only its own."""

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_with_tracing_off_the_sdk_and_the_instrumentations_are_not_even_loaded() -> None:
    program = (
        "import sys\n"
        "from batch_conductor_service.wiring.app import create_app\n"
        "from tests.unit.conftest import unit_settings\n"
        "create_app(unit_settings())\n"
        # (redis-py itself loads the SDK's metrics when it finds them installed.)
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.sdk.trace', "
        "'opentelemetry.instrumentation', 'opentelemetry.exporter', 'grpc'))]\n"
        "print(loaded)\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "BCS_"))}
    result = subprocess.run(
        [sys.executable, "-c", program],
        env=environ,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
