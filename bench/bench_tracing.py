"""/define with tracing off and on, interleaved in one run (docs/tracing.md).

Each configuration is the real service as a process on Redis (consumer off), its batch seeded
with a phase report so that /define reads real state and prunes a step:

- off: no OTEL_* variable, the default: nothing is wrapped, patched or exported;
- on: OTEL_EXPORTER_OTLP_ENDPOINT set, every request a server span and a Redis span, exported
  over OTLP/HTTP to a receiver in this process, which reads each request and answers it (a
  collector runs on another machine: its decoding is not this service's cost, and on a 2-core
  machine it would take CPU from the service measured);
- on 10%: the same, sampling a tenth of the traces BCS starts
  (OTEL_TRACES_SAMPLER=parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG=0.1);
- before (when BCS_BENCH_TRACING_BASE names a git revision): that revision's code, from
  `git archive`, in the same virtual environment: the service before tracing existed.

wrk (-t2 -c32) drives each in turn, the order rotated every round; the medians over the rounds
and their ratios to `off` are what carry over to another machine.

    .venv/bin/python bench/bench_tracing.py      (needs wrk and Redis;
        BCS_BENCH_SECONDS per run, BCS_BENCH_ROUNDS, BCS_BENCH_TRACING_BASE=<git rev>)
"""

import asyncio
import json
import os
import subprocess
import tarfile
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from statistics import median
from typing import Any

from load import LoadResult, require_wrk, run_wrk
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from prometheus_client.parser import text_string_to_metric_families
from service_process import ROOT, ServiceProcess, remove_state, run_id

SECONDS = int(os.environ.get("BCS_BENCH_SECONDS", "4"))
ROUNDS = int(os.environ.get("BCS_BENCH_ROUNDS", "3"))
BASE = os.environ.get("BCS_BENCH_TRACING_BASE", "").strip()
PIPELINE = "cj_assessment"
# The service's consumer is off; the setting still wants a broker address.
NO_BROKER = "127.0.0.1:1"


class Receiver:
    """OTLP/HTTP on 127.0.0.1: reads each export request and answers it, counting bytes."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = len(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    receiver.requests += 1
                    receiver.bytes += size
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """The revision's services/ and libs/, unpacked in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="bcs-base-") as directory:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, "services", "libs"],
            capture_output=True,
            check=True,
        ).stdout
        with tempfile.TemporaryFile() as file:
            file.write(archive)
            file.seek(0)
            with tarfile.open(fileobj=file) as tar:
                tar.extractall(directory, filter="data")
        yield Path(directory)


def post(service: ServiceProcess, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        service.base_url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def span_counts(service: ServiceProcess) -> tuple[float, float]:
    """(exported, dropped) spans, from the service's /metrics."""
    with urllib.request.urlopen(f"{service.base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    exported = dropped = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "bcs_trace_spans_exported_total":
                exported += sample.value
            elif sample.name == "bcs_trace_spans_dropped_total":
                dropped += sample.value
    return exported, dropped


def row(name: str, runs: list[LoadResult], reference: list[LoadResult] | None) -> str:
    rps = median(r.rps for r in runs)
    ratio = f"{rps / median(r.rps for r in reference):>9.2f}x" if reference else f"{'':>10}"
    errors = sum(r.socket_errors + r.non2xx for r in runs)
    return (
        f"  {name:<10}{rps:>9,.0f}{ratio}{median(r.p50_ms for r in runs):>10.2f}"
        f"{median(r.p99_ms for r in runs):>10.2f}" + (f"  ({errors} errors)" if errors else "")
    )


def main() -> None:
    require_wrk()
    # The configurations say for themselves whether they trace.
    for name in [name for name in os.environ if name.startswith("OTEL_")]:
        del os.environ[name]
    print(
        f"bench_tracing  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  wrk -t2 -c32 -d{SECONDS}s, "
        f"{ROUNDS} rounds, /define {PIPELINE} of a batch with state on Redis"
        + (f", before = {BASE}" if BASE else "")
    )
    run = run_id()
    receiver = Receiver()
    services: dict[str, ServiceProcess] = {}
    try:
        with checkout(BASE) if BASE else _nothing() as base:
            environments: dict[str, dict[str, str]] = {"off": {}}
            if base is not None:
                environments = {
                    "before": {"PYTHONPATH": f"{base / 'services'}:{base / 'libs'}"},
                    **environments,
                }
            environments["on"] = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            }
            environments["on 10%"] = {
                **environments["on"],
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
            }
            for name, environ in environments.items():
                services[name] = ServiceProcess.start(
                    NO_BROKER, _run_name(run, name), environ=environ, KAFKA_CONSUMER_ENABLED="false"
                )
            body = {"batch_id": f"{run}-batch", "requested_pipeline": PIPELINE}
            for service in services.values():
                service.wait_until_serving()
                post(
                    service,
                    "/internal/v1/phases/complete",
                    {"batch_id": body["batch_id"], "phase_name": "spellcheck", "success": True},
                )
                run_wrk(service.base_url, body, 1)  # warm up
            results: dict[str, list[LoadResult]] = {name: [] for name in services}
            order = list(services)
            for round_number in range(ROUNDS):
                shift = round_number % len(order)
                for name in order[shift:] + order[:shift]:
                    results[name].append(run_wrk(services[name].base_url, body, SECONDS))
            counts = {name: span_counts(services[name]) for name in ("on", "on 10%")}
    finally:
        for service in services.values():
            service.stop()
        receiver.stop()
        for name in services:
            asyncio.run(remove_state(_run_name(run, name)))
    print(f"  {'tracing':<10}{'req/s':>9}{'of off':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, runs in results.items():
        print(row(name, runs, None if name == "off" else results["off"]))
    if "before" in results:
        off = median(r.rps for r in results["off"]) / median(r.rps for r in results["before"])
        print(f"  off / before: {off:.2f}x req/s (medians of {ROUNDS})")
    for name, (exported, dropped) in counts.items():
        print(f"  {name}: {exported:,.0f} spans exported, {dropped:,.0f} dropped during the runs")
    print(
        f"  the receiver took {receiver.requests:,} export requests, "
        f"{receiver.bytes / 1e6:,.1f} MB (with those flushed at exit)"
    )


def _run_name(run: str, name: str) -> str:
    """The configuration's Redis key prefix (letters, digits and _ only)."""
    return run + "".join(char if char.isalnum() else "_" for char in name)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
