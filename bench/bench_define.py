"""Resolution speed: the pure resolver for small and large batches, and /define in-process.

Prints figures; the interesting numbers are ratios measured in one run (10k vs 10 essays,
HTTP vs pure), since absolute times on a shared machine are noisy.
"""

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from batch_conductor_service.domain.batch_state import BatchSnapshot, RosterSource
from batch_conductor_service.domain.pipelines_file import load_pipelines
from batch_conductor_service.domain.resolution_rules import resolve
from batch_conductor_service.wiring.app import create_app
from batch_conductor_service.wiring.settings import load_settings
from huleedu_service_libs.logging_utils import configure_logging

ROOT = Path(__file__).resolve().parents[1]
GRAPH = load_pipelines(ROOT / "pipelines.yaml")


def snapshot(essays: int) -> BatchSnapshot:
    roster = frozenset(f"essay-{i}" for i in range(essays))
    half = frozenset(list(roster)[: essays // 2])
    return BatchSnapshot(
        batch_id="bench",
        roster=roster,
        roster_source=RosterSource.READY,
        succeeded={"spellcheck": roster, "nlp": half},
        failed={"nlp": frozenset(list(roster - half)[:3])},
    )


def per_second(fn: Callable[[], object], seconds: float = 1.0) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            fn()
        count += 50
    return count / elapsed


async def http_per_second(requests: int = 2000) -> float:
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
    small = per_second(lambda: resolve(GRAPH, "comprehensive", snapshot(10)))
    big_snapshot = snapshot(10_000)
    big = per_second(lambda: resolve(GRAPH, "comprehensive", big_snapshot))
    print(f"  resolve, 10 essays       {small:12,.0f} /s")
    print(f"  resolve, 10,000 essays   {big:12,.0f} /s   ({small / big:.0f}x slower)")
    http = asyncio.run(http_per_second())
    print(f"  POST /define in-process  {http:12,.0f} /s   (memory repository, test client)")


if __name__ == "__main__":
    main()
