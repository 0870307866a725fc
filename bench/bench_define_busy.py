"""/define while the service's own consumer catches up on a backlog, beside /define once it is
idle, in one run: the HTTP API and the consumer share one event loop, so a consumer that holds
it in long pieces makes every request wait behind them.

A backlog of 600 batches of 100 essays (61,200 events; BCS_BENCH_BUSY_BATCHES) is published
first. The service starts on Redis; once its group has joined, wrk (-t2 -c4) drives /define for
one batch for BUSY_SECONDS while the consumer ingests (it needs about 3 s for the backlog); once
the group has committed everything, the same load runs again. The ratios busy/idle of p50 and
p99 are what carry over to another machine.

    .venv/bin/python bench/bench_define_busy.py      (needs wrk and Redis;
        BCS_BENCH_BUSY_ROUNDS, 2 by default; BCS_BENCH_BUSY_BATCHES, 600 by default: a machine
        that ingests the backlog in under BUSY_SECONDS needs more)
"""

import asyncio
import itertools
import os
import statistics
from datetime import UTC, datetime

from backlog import CONSUMED, batch_events, create_topics, publish
from load import LoadResult, require_wrk, run_wrk
from progress import GroupProgress
from service_process import ServiceProcess, remove_state, run_id

from batch_conductor_service.dev.embedded_broker import EmbeddedBroker

BATCHES = int(os.environ.get("BCS_BENCH_BUSY_BATCHES", "600"))
ESSAYS = 100
BUSY_SECONDS = 2
ROUNDS = int(os.environ.get("BCS_BENCH_BUSY_ROUNDS", "2"))
BODY = {"batch_id": "b1", "requested_pipeline": "comprehensive"}


async def one_round(bootstrap: str, total: int) -> tuple[LoadResult, LoadResult]:
    run = run_id()
    service = ServiceProcess.start(bootstrap, run)
    try:
        await asyncio.to_thread(service.wait_until_serving)
        await asyncio.to_thread(service.wait_until_logged, "Joined group")
        busy = await asyncio.to_thread(run_wrk, service.base_url, BODY, BUSY_SECONDS, connections=4)
        topics = [topic.value for topic in CONSUMED]
        async with GroupProgress(bootstrap, f"{run}-group", topics) as progress:
            committed = await progress.committed()
            if committed >= total:
                raise RuntimeError(
                    "the backlog was consumed before the load ended, so part of it measured an "
                    "idle consumer: raise BCS_BENCH_BUSY_BATCHES"
                )
            while committed < total:
                await asyncio.sleep(0.05)
                committed = await progress.committed()
        idle = await asyncio.to_thread(run_wrk, service.base_url, BODY, BUSY_SECONDS, connections=4)
        return busy, idle
    finally:
        service.stop()
        await remove_state(run)


def row(name: str, results: list[LoadResult]) -> str:
    p50 = statistics.median(r.p50_ms for r in results)
    p99 = statistics.median(r.p99_ms for r in results)
    rps = statistics.median(r.rps for r in results)
    return f"  {name:<28}{rps:>8,.0f} req/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"


async def main() -> None:
    require_wrk()
    print(
        f"bench_define_busy  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  "
        f"{BATCHES} x {ESSAYS} essays, wrk -c4 for {BUSY_SECONDS}s, {ROUNDS} rounds (medians)"
    )
    broker = EmbeddedBroker.start(preferred_port=0)
    try:
        bootstrap = broker.bootstrap_servers
        await create_topics(bootstrap)
        batches = (batch_events(f"b{i}", ESSAYS) for i in range(BATCHES))
        total = await publish(bootstrap, itertools.chain.from_iterable(batches))
        busy: list[LoadResult] = []
        idle: list[LoadResult] = []
        for _ in range(ROUNDS):
            during, after = await one_round(bootstrap, total)
            busy.append(during)
            idle.append(after)
        print(row("/define, consumer ingesting", busy))
        print(row("/define, consumer idle", idle))
        p50 = statistics.median(b.p50_ms / i.p50_ms for b, i in zip(busy, idle, strict=True))
        p99 = statistics.median(b.p99_ms / i.p99_ms for b, i in zip(busy, idle, strict=True))
        print(f"  ingesting / idle: p50 {p50:.1f}x, p99 {p99:.1f}x")
    finally:
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
