"""Translation alone: what reading one consumed message costs, per topic and over the backlog's
mix (registered and ready rosters, then a spellcheck result per essay, as bench_ingest sends),
beside parsing its JSON alone, the floor under any reading of it.

Prints microseconds an event, the best of several passes (the least disturbed by the machine),
and the ratio to the JSON parse.

    .venv/bin/python bench/bench_translate.py      (needs nothing running)
"""

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import orjson
from backlog import Event, batch_events

from batch_conductor_service.consumer.translation import translate

PASSES = 7
SKEW = timedelta(hours=1)


def best_us(events: Sequence[Event], read: Callable[[Event], object]) -> float:
    best = float("inf")
    for _ in range(PASSES):
        started = time.perf_counter()
        for event in events:
            read(event)
        best = min(best, time.perf_counter() - started)
    return best / len(events) * 1e6


def main() -> None:
    now = datetime.now(UTC)
    events = [e for b in range(20) for e in batch_events(f"batch-{b}", 100)]
    print(f"bench_translate  {now:%Y-%m-%d %H:%M} UTC  {len(events):,} events, best of {PASSES}")
    parse = best_us(events, lambda e: orjson.loads(e.value))
    mix = best_us(events, lambda e: translate(e.topic, e.value, now, SKEW))
    print(f"  {'JSON parse alone':<42}{parse:7.2f} us an event")
    print(f"  {'translate, the backlog mix':<42}{mix:7.2f} us an event  ({mix / parse:.1f}x)")
    by_topic: dict[str, list[Event]] = {}
    for event in events:
        by_topic.setdefault(event.topic, []).append(event)
    for topic, of_topic in by_topic.items():
        cost = best_us(of_topic, lambda e: translate(e.topic, e.value, now, SKEW))
        print(f"  {topic:<42}{cost:7.2f} us an event  ({len(of_topic):,} of them)")


if __name__ == "__main__":
    main()
