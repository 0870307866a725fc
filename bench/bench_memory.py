"""Memory over a long run: 200,000 events (1,961 batches of 100 essays) through the service on
Redis, its resident set size sampled as the group's committed offsets advance.

Flat means the second half of the run adds (almost) nothing: what the process holds does not
grow with the number of events it has seen, only the stores do.

    .venv/bin/python bench/bench_memory.py      (needs Redis)
"""

import asyncio
import itertools
import time
from datetime import UTC, datetime

from backlog import CONSUMED, batch_events, create_topics, publish
from progress import GroupProgress
from service_process import ServiceProcess, remove_state, run_id

from batch_conductor_service.dev.embedded_broker import EmbeddedBroker

BATCHES = 1_961
ESSAYS = 100
MIB = 1024 * 1024
# Allowed growth over the second half: allocator noise, not a leak.
FLAT_WITHIN_MIB = 8.0


async def main() -> None:
    print(f"bench_memory  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {BATCHES} x {ESSAYS} essays")
    run = run_id()
    broker = EmbeddedBroker.start(preferred_port=0)
    service: ServiceProcess | None = None
    try:
        bootstrap = broker.bootstrap_servers
        await create_topics(bootstrap)
        events = itertools.chain.from_iterable(
            batch_events(f"{run}-b{i}", ESSAYS) for i in range(BATCHES)
        )
        total = await publish(bootstrap, events)
        service = ServiceProcess.start(bootstrap, run)
        samples: list[tuple[int, int]] = []  # (events committed, RSS bytes)
        async with GroupProgress(bootstrap, f"{run}-group", [t.value for t in CONSUMED]) as group:
            while (committed := await group.committed()) < total:
                if service.process.poll() is not None:
                    raise RuntimeError(f"bcs exited: {service.log_tail()}")
                if committed:
                    samples.append((committed, service.rss_bytes()))
                await asyncio.sleep(0.25)
        seconds = time.perf_counter() - service.started_at
        samples.append((total, service.rss_bytes()))
        print(f"  {total:,} events in {seconds:.1f}s ({total / seconds:,.0f} ev/s)")
        for share in (0.1, 0.25, 0.5, 0.75, 1.0):
            at, rss = next(s for s in samples if s[0] >= share * total)
            print(f"  RSS after {at:>8,} events: {rss / MIB:7.1f} MiB")
        half = next(rss for at, rss in samples if at >= total / 2)
        peak_after_half = max(rss for at, rss in samples if at >= total / 2)
        growth = (peak_after_half - half) / MIB
        verdict = "flat" if growth <= FLAT_WITHIN_MIB else "GROWING"
        print(f"  growth over the second half: {growth:+.1f} MiB ({verdict})")
    finally:
        if service is not None:
            service.stop()
        broker.stop()
        await remove_state(run)


if __name__ == "__main__":
    asyncio.run(main())
