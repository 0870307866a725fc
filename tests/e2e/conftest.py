import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batch_conductor_service.dev.embedded_broker import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class RunningService:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log_lines(self) -> list[dict[str, Any]]:
        """The service's JSON log lines so far (other lines, if any, are skipped)."""
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(
            self.base_url + path, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def post_json(self, path: str, payload: Any) -> tuple[int, dict[str, Any]]:
        status, _, body = self.request(
            "POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"}
        )
        return status, json.loads(body)


def start_service(
    command: list[str],
    env: dict[str, str],
    port: int,
    log_path: Path,
    *,
    probe_with_request: bool = True,
) -> RunningService:
    """Returns once the service answers /healthz, or without `probe_with_request` once its port
    accepts a connection: then no request shows in its metrics."""
    # Output goes to a file, not a pipe nobody reads, which would block a chatty service.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BCS_")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**clean, "BCS_HTTP_HOST": "127.0.0.1", "BCS_HTTP_PORT": str(port), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, so that stopping it reaches everything it started.
            start_new_session=True,
        )
    service = RunningService(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log_path.read_text(errors="replace")
            raise RuntimeError(f"service exited with {process.returncode}:\n{output}")
        try:
            if probe_with_request:
                service.request("GET", "/healthz")
            else:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return service
        except OSError:
            time.sleep(0.1)
    kill_group(process)
    raise RuntimeError("service did not answer /healthz within 30 s")


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the process and every process of its group, then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def stop_if_running(service: RunningService) -> None:
    if service.process.poll() is None:
        kill_group(service.process)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RunningService]:
    running = start_service(
        [sys.executable, "-m", "batch_conductor_service"],
        {"BCS_USE_MOCK_REPOSITORY": "true", "BCS_KAFKA_CONSUMER_ENABLED": "false"},
        free_port(),
        tmp_path / "service.log",
    )
    yield running
    stop_if_running(running)


@pytest.fixture
def dev_service(tmp_path: Path) -> Iterator[RunningService]:
    """`bcs-dev` (what `make run` runs), its state file in tmp_path."""
    running = start_service(
        [str(BIN / "bcs-dev")],
        {"BCS_DEV_BROKER_PORT": "0", "BCS_DEV_STATE_FILE": str(tmp_path / "bcs-dev.json")},
        free_port(),
        tmp_path / "dev.log",
    )
    yield running
    stop_if_running(running)


def run_tool(
    command: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """One of the installed commands, with no BCS_* variable but those given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BCS_")}
    return subprocess.run(
        command,
        env={**clean, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
