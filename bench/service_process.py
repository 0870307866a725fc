"""The real service (`python -m batch_conductor_service`) as a process on a free port, the way
the README starts it, with its JSON log lines kept in a file for the bench to read."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch_conductor_service.dev.embedded_broker import free_port

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("BCS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get("BCS_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def run_id() -> str:
    return f"bench{uuid.uuid4().hex[:8]}"


@dataclass
class ServiceProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started_at: float
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        bootstrap: str,
        run: str,
        *,
        with_postgres: bool = False,
        environ: dict[str, str] | None = None,
        **settings: str,
    ) -> "ServiceProcess":
        """Starts the service on Redis (and PostgreSQL) under keys and a schema of its own;
        `environ`: variables besides the BCS_ settings (OTEL_*, PYTHONPATH)."""
        port = free_port()
        env = {
            **os.environ,
            "BCS_ENVIRONMENT": "production",
            "BCS_HTTP_HOST": "127.0.0.1",
            "BCS_HTTP_PORT": str(port),
            # Another checkout's file when measuring its code (see docs/performance.md).
            "BCS_PIPELINES_PATH": os.environ.get(
                "BCS_BENCH_PIPELINES", str(ROOT / "pipelines.yaml")
            ),
            "BCS_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "BCS_KAFKA_CONSUMER_GROUP_ID": f"{run}-group",
            "BCS_REDIS_URL": REDIS_URL,
            "BCS_REDIS_KEY_PREFIX": run,
            "BCS_DATABASE_URL": DATABASE_URL if with_postgres else "",
            "BCS_DATABASE_SCHEMA": run,
            **{f"BCS_{name}": value for name, value in settings.items()},
            **(environ or {}),
        }
        log_path = Path(tempfile.mkstemp(prefix=f"{run}-", suffix=".log")[1])
        started_at = time.perf_counter()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "batch_conductor_service"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        return cls(process, port, log_path, started_at, env)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_serving(self, within_seconds: float = 60.0) -> float:
        """Seconds from process start until /healthz answers at all."""
        deadline = time.monotonic() + within_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bcs exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2):
                    return time.perf_counter() - self.started_at
            except urllib.error.HTTPError:
                return time.perf_counter() - self.started_at  # 503 still means serving
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"bcs did not serve within {within_seconds}s: {self.log_tail()}")

    def wait_until_logged(self, prefix: str, within_seconds: float = 60.0) -> None:
        """Until a log line's event starts with `prefix` (aiokafka's "Joined group", say)."""
        deadline = time.monotonic() + within_seconds
        while time.monotonic() < deadline:
            if any(str(line.get("event", "")).startswith(prefix) for line in self.log_lines()):
                return
            time.sleep(0.01)
        raise RuntimeError(f"bcs logged no {prefix!r} within {within_seconds}s")

    def define(self, batch_id: str, pipeline: str = "comprehensive") -> dict[str, Any]:
        body = json.dumps({"batch_id": batch_id, "requested_pipeline": pipeline}).encode()
        request = urllib.request.Request(
            f"{self.base_url}/internal/v1/pipelines/define",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    def rss_bytes(self) -> int:
        """Resident set size now, from /proc (Linux)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("VmRSS missing from /proc status")

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used, from /proc (Linux)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_path.read_bytes().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_path.unlink(missing_ok=True)


async def remove_state(run: str, with_postgres: bool = False) -> None:
    """Deletes the run's Redis keys and PostgreSQL schema."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{run}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)
    finally:
        await client.aclose()
    if with_postgres:
        import asyncpg

        connection = await asyncpg.connect(DATABASE_URL)
        try:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{run}" CASCADE')
        finally:
            await connection.close()
