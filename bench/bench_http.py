"""/define under load, side by side with the HTTP stack's floor, in one run.

The service runs as a process on Redis, its state projected by its own consumer from real
events on the bundled broker (Tansu): batches of 30, 1,000 and 10,000 essays, each with its
roster and a spellcheck result per essay. wrk (-t2 -c32) then drives /define for each of them
and for a batch nobody has seen, and drives the floor app (bench/floor_app.py) before and after;
the ratio to the floor's mean is what carries over to another machine.

    .venv/bin/python bench/bench_http.py        (needs wrk, Redis; BCS_BENCH_SECONDS per run)
"""

import asyncio
import itertools
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

from backlog import batch_events, create_topics, publish
from load import LoadResult, require_wrk, run_wrk, wait_until_listening
from service_process import ROOT, ServiceProcess, remove_state, run_id

from batch_conductor_service.dev.embedded_broker import EmbeddedBroker, free_port

SECONDS = int(os.environ.get("BCS_BENCH_SECONDS", "10"))
SIZES = (30, 1_000, 10_000)
PIPELINE = "comprehensive"


def wait_projected(service: ServiceProcess, batch_ids: list[str], within: float = 180.0) -> float:
    """Seconds until /define prunes spellcheck for every batch: its events are all applied."""
    started = time.perf_counter()
    deadline = time.monotonic() + within
    waiting = list(batch_ids)
    while waiting:
        answer = service.define(waiting[0], PIPELINE)
        if "spellcheck" not in answer["final_pipeline"]:
            waiting.pop(0)
            continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"batch {waiting[0]} not projected within {within}s: {answer}")
        time.sleep(0.2)
    return time.perf_counter() - started


def define_body(batch_id: str) -> dict[str, str]:
    return {"batch_id": batch_id, "requested_pipeline": PIPELINE}


def row(name: str, result: LoadResult, floor_rps: float) -> str:
    errors = result.socket_errors + result.non2xx
    flag = f"  ({errors} errors)" if errors else ""
    return (
        f"  {name:<24}{result.rps:>9,.0f}{result.rps / floor_rps:>9.2f}x"
        f"{result.p50_ms:>10.1f}{result.p99_ms:>10.1f}{flag}"
    )


def main() -> None:
    require_wrk()
    print(f"bench_http  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  wrk -t2 -c32 -d{SECONDS}s")
    run = run_id()
    batches = {size: f"{run}-b{size}" for size in SIZES}
    broker = EmbeddedBroker.start(preferred_port=0)
    service: ServiceProcess | None = None
    floor = None
    try:
        asyncio.run(create_topics(broker.bootstrap_servers))
        events = itertools.chain.from_iterable(
            batch_events(batch_id, size) for size, batch_id in batches.items()
        )
        sent = asyncio.run(publish(broker.bootstrap_servers, events))
        service = ServiceProcess.start(broker.bootstrap_servers, run)
        service.wait_until_serving()
        projected = wait_projected(service, list(batches.values()))
        print(f"  {sent:,} events projected {projected:.1f}s after the service served")
        floor_port = free_port()
        floor = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "floor_app.py"), str(floor_port)],
            stderr=subprocess.DEVNULL,
        )
        floor_url = f"http://127.0.0.1:{floor_port}"
        wait_until_listening(floor_url)
        body = define_body("floor")
        run_wrk(floor_url, body, 1)  # warm both up before measuring
        run_wrk(service.base_url, define_body(batches[30]), 1)
        floor_before = run_wrk(floor_url, body, SECONDS)
        targets = {f"{size:,}-essay batch": batch_id for size, batch_id in batches.items()}
        targets["unknown batch"] = f"{run}-never-seen"
        results = {
            name: run_wrk(service.base_url, define_body(b), SECONDS) for name, b in targets.items()
        }
        floor_after = run_wrk(floor_url, body, SECONDS)
        floor_rps = (floor_before.rps + floor_after.rps) / 2
        print(f"  {'/define for':<24}{'req/s':>9}{'of floor':>10}{'p50 ms':>10}{'p99 ms':>10}")
        print(row("floor (before)", floor_before, floor_rps))
        for name, result in results.items():
            print(row(name, result, floor_rps))
        print(row("floor (after)", floor_after, floor_rps))
        small, big = results["30-essay batch"], results["10,000-essay batch"]
        print(f"  p99 10,000 / p99 30 essays: {big.p99_ms / small.p99_ms:.2f}x")
    finally:
        if floor is not None:
            floor.terminate()
            floor.wait()
        if service is not None:
            service.stop()
        broker.stop()
        asyncio.run(remove_state(run))


if __name__ == "__main__":
    main()
