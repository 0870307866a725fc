import json
import os
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

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningService:
    process: subprocess.Popen[str]
    base_url: str

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


def start_service(command: list[str], env: dict[str, str], port: int) -> RunningService:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BCS_")}
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**clean, "BCS_HTTP_HOST": "127.0.0.1", "BCS_HTTP_PORT": str(port), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    service = RunningService(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"service exited with {process.returncode}:\n{output}")
        try:
            service.request("GET", "/healthz")
            return service
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("service did not answer /healthz within 30 s")


@pytest.fixture
def service() -> Iterator[RunningService]:
    running = start_service(
        [sys.executable, "-m", "batch_conductor_service"],
        {"BCS_USE_MOCK_REPOSITORY": "true", "BCS_KAFKA_CONSUMER_ENABLED": "false"},
        free_port(),
    )
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait(10)
