"""/define's CPU per request in-process, on Redis, beside the floor app driven the same way.

The app is called through its ASGI interface, with no HTTP server or socket between, so what
is measured is the route, its hooks, quart-dishka's request scope, the count read and the log
lines, and nothing of Hypercorn's or the load generator's. Requests go in rounds of 2 or 8 at
once (the count reads of a round share round trips), rounds of the service and of the floor
app interleaved. With another checkout's code on PYTHONPATH (docs/performance.md) it gives that
code's figures, for a before and after on one machine (one with the same store API: the batch
is seeded through `BatchStateRepositoryProtocol.apply`). Uses its own key prefix, removed after.

    .venv/bin/python bench/bench_define_cpu.py     (needs Redis; BCS_BENCH_REDIS_URL)
"""

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import orjson
import uvloop
from floor_app import app as floor_app
from prometheus_client import CollectorRegistry
from service_process import REDIS_URL, remove_state
from stores import seed_batch

from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.wiring.app import create_app
from batch_conductor_service.wiring.settings import load_settings
from huleedu_service_libs.logging_utils import configure_logging

ROOT = Path(__file__).resolve().parents[1]
# BCS_BENCH_DEFINE_CPU_SECONDS and _ROUNDS make a quick run shorter.
SECONDS = float(os.environ.get("BCS_BENCH_DEFINE_CPU_SECONDS", "2"))
ROUNDS = int(os.environ.get("BCS_BENCH_DEFINE_CPU_ROUNDS", "3"))
PATH = "/internal/v1/pipelines/define"

AsgiApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def post(app: AsgiApp, body: bytes) -> None:
    """One POST through the app's ASGI interface, as a server would make it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 4002),
        "extensions": {},
    }
    answered = asyncio.Event()
    status: list[int] = []
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop()
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif not message.get("more_body"):
            answered.set()

    await app(scope, receive, send)
    if status != [200]:
        raise RuntimeError(f"POST {PATH} answered {status}")


async def cpu_per_request(app: AsgiApp, body: bytes, in_flight: int) -> float:
    """Microseconds of this process's CPU per request over SECONDS of rounds."""
    requests = 0
    cpu, wall = time.process_time(), time.perf_counter()
    while time.perf_counter() - wall < SECONDS:
        await asyncio.gather(*(post(app, body) for _ in range(in_flight)))
        requests += in_flight
    return (time.process_time() - cpu) / requests * 1e6


async def measure() -> list[tuple[int, float, float]]:
    """Per number in flight: /define's and the floor app's CPU a request, in microseconds."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        ENVIRONMENT="production",
        KAFKA_CONSUMER_ENABLED=False,
        REDIS_URL=REDIS_URL,
        REDIS_KEY_PREFIX=prefix,
        PIPELINES_PATH=os.environ.get("BCS_BENCH_PIPELINES", str(ROOT / "pipelines.yaml")),
    )
    configure_logging("INFO", "batch_conductor_service")
    service = create_app(settings, registry=CollectorRegistry())
    await service.startup()
    await floor_app.startup()
    try:
        repository = await service.extensions["QUART_DISHKA"].container.get(
            BatchStateRepositoryProtocol
        )
        # A 30-essay batch: its roster and a spellcheck result per essay.
        await seed_batch(repository, "b30", 30)
        body = orjson.dumps({"batch_id": "b30", "requested_pipeline": "comprehensive"})
        floor_body = orjson.dumps({"batch_id": "floor", "requested_pipeline": "comprehensive"})
        rows = []
        for in_flight in (2, 8):
            await cpu_per_request(service, body, in_flight)  # warm-up
            served: list[float] = []
            floor: list[float] = []
            for _ in range(ROUNDS):
                served.append(await cpu_per_request(service, body, in_flight))
                floor.append(await cpu_per_request(floor_app, floor_body, in_flight))
            rows.append((in_flight, median(served), median(floor)))
    finally:
        await service.shutdown()
        await floor_app.shutdown()
        await remove_state(prefix)
    return rows


def main() -> None:
    print(f"bench_define_cpu  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  in-process, 30-essay batch")
    # Both INFO lines of a request are rendered and written, as in the service, to nowhere.
    stdout = sys.stdout
    with open(os.devnull, "w") as nowhere:
        sys.stdout = nowhere
        try:
            rows = uvloop.run(measure())
        finally:
            sys.stdout = stdout
    for in_flight, served_us, floor_us in rows:
        print(
            f"  {in_flight} in flight: /define {served_us:6.1f} us CPU a request, floor app "
            f"{floor_us:6.1f} us ({served_us / floor_us:.2f}x the floor), medians of {ROUNDS}"
        )


if __name__ == "__main__":
    main()
