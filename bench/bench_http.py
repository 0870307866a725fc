"""/define under load, side by side with the HTTP stack's floor, in one run.

The service runs as a process on Redis, its state projected by its own consumer from real
events on the bundled broker (Tansu): batches of 30, 1,000 and 10,000 essays, each with its
roster and a spellcheck result per essay. wrk (-t2 -c32) then drives /define for each of them
and for a batch nobody has seen, each run between two runs of the floor app
(bench/floor_app.py); the ratio to those two, the median over the rounds, is what carries over
to another machine (and what a machine shared with other work disturbs least). A reference row
does the same for the floor app that also reads Redis once and logs one line a request: what
any service of this shape pays before doing anything of its own.

    .venv/bin/python bench/bench_http.py        (needs wrk and Redis;
        BCS_BENCH_SECONDS per run, BCS_BENCH_ROUNDS)
"""

import asyncio
import itertools
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from statistics import median

from backlog import batch_events, create_topics, publish
from load import LoadResult, require_wrk, run_wrk, wait_until_listening
from service_process import REDIS_URL, ROOT, ServiceProcess, remove_state, run_id

from batch_conductor_service.dev.embedded_broker import EmbeddedBroker, free_port

SECONDS = int(os.environ.get("BCS_BENCH_SECONDS", "4"))
ROUNDS = int(os.environ.get("BCS_BENCH_ROUNDS", "2"))
SIZES = (30, 1_000, 10_000)
PIPELINE = "comprehensive"
REFERENCE = "floor + read + log line"


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


@dataclass
class Figures:
    """One target's runs, each with the floor measured just before and just after it."""

    runs: list[LoadResult] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)

    def row(self, name: str) -> str:
        errors = sum(r.socket_errors + r.non2xx for r in self.runs)
        flag = f"  ({errors} errors)" if errors else ""
        return (
            f"  {name:<24}{median(r.rps for r in self.runs):>9,.0f}{median(self.ratios):>9.2f}x"
            f"{median(r.p50_ms for r in self.runs):>10.1f}{self.p99:>10.1f}{flag}"
        )

    @property
    def p99(self) -> float:
        return median(r.p99_ms for r in self.runs)


def main() -> None:
    require_wrk()
    print(
        f"bench_http  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  wrk -t2 -c32 -d{SECONDS}s, "
        f"{ROUNDS} rounds, the floor before and after every run"
    )
    run = run_id()
    batches = {size: f"{run}-b{size}" for size in SIZES}
    broker = EmbeddedBroker.start(preferred_port=0)
    service: ServiceProcess | None = None
    floor = reference = None
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
        reference_port = free_port()
        reference = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "floor_app.py"), str(reference_port), REDIS_URL],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        reference_url = f"http://127.0.0.1:{reference_port}"
        wait_until_listening(floor_url)
        wait_until_listening(reference_url)
        targets = {f"{size:,}-essay batch": batch_id for size, batch_id in batches.items()}
        targets["unknown batch"] = f"{run}-never-seen"
        urls = {name: service.base_url for name in targets}
        targets[REFERENCE], urls[REFERENCE] = "floor", reference_url
        run_wrk(floor_url, define_body("floor"), 1)  # warm them up before measuring
        run_wrk(reference_url, define_body("floor"), 1)
        run_wrk(service.base_url, define_body(batches[30]), 1)
        floor_figures = Figures()
        figures = {name: Figures() for name in targets}
        for _ in range(ROUNDS):
            before = run_wrk(floor_url, define_body("floor"), SECONDS)
            floor_figures.runs.append(before)
            for name, batch_id in targets.items():
                result = run_wrk(urls[name], define_body(batch_id), SECONDS)
                after = run_wrk(floor_url, define_body("floor"), SECONDS)
                floor_figures.runs.append(after)
                figures[name].runs.append(result)
                figures[name].ratios.append(result.rps / ((before.rps + after.rps) / 2))
                before = after
        floor_figures.ratios = [1.0]
        print(f"  {'/define for':<24}{'req/s':>9}{'of floor':>10}{'p50 ms':>10}{'p99 ms':>10}")
        print(floor_figures.row("floor app"))
        for name, target in figures.items():
            print(target.row(name))
        small, big = figures["30-essay batch"], figures["10,000-essay batch"]
        print(f"  p99 10,000 / p99 30 essays: {big.p99 / small.p99:.2f}x  (medians of {ROUNDS})")
    finally:
        for app in (floor, reference):
            if app is not None:
                app.terminate()
                app.wait()
        if service is not None:
            service.stop()
        broker.stop()
        asyncio.run(remove_state(run))


if __name__ == "__main__":
    main()
