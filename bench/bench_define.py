"""Resolution speed: the pure counting rule and resolver for small and large batches, and
/define in-process.

Prints figures; the interesting numbers are ratios measured in one run (10k vs 10 essays,
HTTP vs pure), since absolute times on a shared machine are noisy. BCS_BENCH_DEFINE_SECONDS
(default 1) is how long each pure figure runs, BCS_BENCH_DEFINE_REQUESTS (default 2000) how
many requests the in-process one sends.
"""

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from batch_conductor_service.domain.batch_state import BatchFacts, RosterSource, count
from batch_conductor_service.domain.pipelines_file import load_pipelines
from batch_conductor_service.domain.resolution_rules import plan, prune
from batch_conductor_service.wiring.app import create_app
from batch_conductor_service.wiring.settings import load_settings
from huleedu_service_libs.logging_utils import configure_logging

ROOT = Path(__file__).resolve().parents[1]
GRAPH = load_pipelines(ROOT / "pipelines.yaml")
SECONDS = float(os.environ.get("BCS_BENCH_DEFINE_SECONDS", "1"))
REQUESTS = int(os.environ.get("BCS_BENCH_DEFINE_REQUESTS", "2000"))


def facts(essays: int) -> BatchFacts:
    roster = [f"essay-{i}" for i in range(essays)]
    half = roster[: essays // 2]
    return BatchFacts(
        "bench",
        rosters={RosterSource.READY: set(roster)},
        succeeded={"spellcheck": set(roster), "nlp": set(half)},
        failed={"nlp": set(roster[essays // 2 :][:3])},
    )


def per_second(fn: Callable[[], object], seconds: float = SECONDS) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            fn()
        count += 50
    return count / elapsed


async def http_per_second(requests: int = REQUESTS) -> float:
    settings = load_settings(
        ENVIRONMENT="testing", KAFKA_CONSUMER_ENABLED=False, PIPELINES_PATH=ROOT / "pipelines.yaml"
    )
    app = create_app(settings, registry=CollectorRegistry())
    body = {"batch_id": "bench", "requested_pipeline": "comprehensive"}
    async with app.test_app():
        client = app.test_client()
        start = time.perf_counter()
        for _ in range(requests):
            response = await client.post("/internal/v1/pipelines/define", json=body)
            assert response.status_code == 200
        return requests / (time.perf_counter() - start)


def main() -> None:
    configure_logging("WARNING")
    print(f"bench_define  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    small_facts, big_facts = facts(10), facts(10_000)
    small = per_second(lambda: count(small_facts))
    big = per_second(lambda: count(big_facts))
    print(f"  count, 10 essays         {small:12,.0f} /s")
    print(f"  count, 10,000 essays     {big:12,.0f} /s   ({small / big:.0f}x slower)")
    # What /define does with the counts a store read: the same for any batch size.
    requested = plan(GRAPH, "comprehensive")
    small_counts, big_counts = count(small_facts), count(big_facts)
    small = per_second(lambda: prune(GRAPH, requested, small_counts))
    big = per_second(lambda: prune(GRAPH, requested, big_counts))
    print(f"  prune, 10 essays         {small:12,.0f} /s")
    print(f"  prune, 10,000 essays     {big:12,.0f} /s   ({small / big:.1f}x slower)")
    http = asyncio.run(http_per_second())
    print(f"  POST /define in-process  {http:12,.0f} /s   (memory repository, test client)")


if __name__ == "__main__":
    main()
