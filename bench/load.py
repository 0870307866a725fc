"""HTTP load with wrk (Debian package `wrk`), two threads and 32 connections by default, over real
sockets."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("define.lua")
_RESULT = re.compile(r"^RESULT (.*)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non2xx: int


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit(
            "bench: wrk is not installed; the HTTP figures need it. On Debian/Ubuntu:\n"
            "  apt-get update && apt-get install -y wrk"
        )
    return path


def wait_until_listening(base_url: str, within_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + within_seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/", timeout=1):
                return
        except urllib.error.HTTPError:
            return  # a 404 or 405 answers: the server is up
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{base_url} did not answer within {within_seconds}s")


def run_wrk(base_url: str, body: dict[str, str], seconds: int, connections: int = 32) -> LoadResult:
    wrk = [require_wrk(), f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s"]
    output = subprocess.run(
        [*wrk, "--latency", "-s", str(SCRIPT), base_url],
        env={**os.environ, "BENCH_BODY": json.dumps(body)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = _RESULT.search(output)
    if match is None:
        raise RuntimeError(f"wrk printed no RESULT line:\n{output}")
    fields = dict(pair.split("=") for pair in match.group(1).split())
    return LoadResult(
        requests=int(fields["requests"]),
        rps=float(fields["rps"]),
        p50_ms=float(fields["p50_ms"]),
        p99_ms=float(fields["p99_ms"]),
        socket_errors=int(fields["socket_errors"]),
        non2xx=int(fields["non2xx"]),
    )
