"""Ingestion from a backlog: 200 batches of 100 essays (registered, ready and a spellcheck
result per essay: 20,400 events on 3 partitions per topic), through the real consumer of the
service started as a process, on Redis and on Redis + PostgreSQL.

Timed from process start until the group's committed offsets cover every message (the service
commits only what it has stored), then every batch is checked over /define. The group join is
reported on its own. A bare aiokafka read of the same messages in the same run is the reference.
Each store is measured ROUNDS times, the two interleaved; a row is the run with the median rate
after the join, and the range over the runs follows it (a shared machine's PostgreSQL commits
vary run to run).

    .venv/bin/python bench/bench_ingest.py      (needs Redis and PostgreSQL;
        BCS_BENCH_INGEST_ROUNDS, 3 by default; BCS_BENCH_INGEST_BATCHES, 200 by default: more
        makes the window after the join longer and a run steadier)
"""

import asyncio
import itertools
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from backlog import CONSUMED, batch_events, create_topics, publish
from progress import GroupProgress
from service_process import ServiceProcess, remove_state, run_id

from batch_conductor_service.dev.embedded_broker import EmbeddedBroker

BATCHES = int(os.environ.get("BCS_BENCH_INGEST_BATCHES", "200"))
ESSAYS = 100
ROUNDS = int(os.environ.get("BCS_BENCH_INGEST_ROUNDS", "3"))


@dataclass(frozen=True, slots=True)
class Ingestion:
    serving_s: float
    joined_s: float
    first_commit_s: float
    done_s: float
    cpu_s: float  # the service's CPU time until done, start-up and join included

    def rate_after_join(self, total: int) -> float:
        return total / (self.done_s - self.joined_s)


async def bare_read(bootstrap: str, total: int) -> float:
    """Seconds for a plain aiokafka consumer, no group, to fetch every message once."""
    started = time.perf_counter()
    consumer = AIOKafkaConsumer(
        *(topic.value for topic in CONSUMED),
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        read = 0
        while read < total:
            fetched = await consumer.getmany(timeout_ms=500, max_records=500)
            read += sum(len(messages) for messages in fetched.values())
    finally:
        await consumer.stop()
    return time.perf_counter() - started


def joined_after(service: ServiceProcess, wall_start: float) -> float:
    """Seconds from process start to the group join aiokafka logs ("Joined group")."""
    for line in service.log_lines():
        if str(line.get("event", "")).startswith("Joined group"):
            at = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
            return at - wall_start
    return float("nan")


async def ingest(bootstrap: str, total: int, with_postgres: bool) -> Ingestion:
    run = run_id()
    wall_start = time.time()
    service = ServiceProcess.start(bootstrap, run, with_postgres=with_postgres)
    try:
        serving = await asyncio.to_thread(service.wait_until_serving)
        first_commit = None
        topics = [topic.value for topic in CONSUMED]
        async with GroupProgress(bootstrap, f"{run}-group", topics) as progress:
            while (committed := await progress.committed()) < total:
                if committed and first_commit is None:
                    first_commit = time.perf_counter() - service.started_at
                if service.process.poll() is not None:
                    raise RuntimeError(f"bcs exited: {service.log_tail()}")
                await asyncio.sleep(0.02)
        done = time.perf_counter() - service.started_at
        cpu = service.cpu_seconds()
        for i in range(BATCHES):
            answer = await asyncio.to_thread(service.define, f"b{i}")
            if "spellcheck" in answer["final_pipeline"]:
                raise RuntimeError(f"batch b{i} committed but not projected: {answer}")
        joined = joined_after(service, wall_start)
        return Ingestion(serving, joined, first_commit or done, done, cpu)
    finally:
        service.stop()
        await remove_state(run, with_postgres)


def report(name: str, total: int, results: list[Ingestion], bare_rate: float) -> None:
    ranked = sorted(results, key=lambda r: r.rate_after_join(total))
    result = ranked[len(ranked) // 2]
    rate = total / result.done_s
    low, high = ranked[0].rate_after_join(total), ranked[-1].rate_after_join(total)
    print(
        f"  {name:<22}{rate:>9,.0f} ev/s  ({rate / bare_rate:.3f}x bare)  "
        f"{result.done_s:5.1f}s: serving {result.serving_s:.1f}s, joined {result.joined_s:.1f}s, "
        f"first commit {result.first_commit_s:.1f}s; after the join "
        f"{result.rate_after_join(total):,.0f} ev/s ({low:,.0f} to {high:,.0f} in {len(ranked)} "
        f"runs); service CPU {result.cpu_s:.1f}s"
    )


async def main() -> None:
    print(f"bench_ingest  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {BATCHES} x {ESSAYS} essays")
    broker = EmbeddedBroker.start(preferred_port=0)
    try:
        bootstrap = broker.bootstrap_servers
        await create_topics(bootstrap)
        # Batch ids are the same in every run: the stores' key prefix and schema keep runs apart.
        batches = (batch_events(f"b{i}", ESSAYS) for i in range(BATCHES))
        events = itertools.chain.from_iterable(batches)
        total = await publish(bootstrap, events)
        bare_seconds = await bare_read(bootstrap, total)
        bare_rate = total / bare_seconds
        print(f"  {total:,} events; bare aiokafka read {bare_rate:,.0f} msg/s")
        runs: dict[bool, list[Ingestion]] = {False: [], True: []}
        for _ in range(ROUNDS):
            for with_postgres, results in runs.items():
                results.append(await ingest(bootstrap, total, with_postgres))
        report("Redis", total, runs[False], bare_rate)
        report("Redis + PostgreSQL", total, runs[True], bare_rate)
    finally:
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
