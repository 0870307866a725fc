"""The same random change sequences, given to every store, give the same answers.

Hypothesis draws a few changes of one batch (shared essays, equal times, two rosters, every
status, reports without an id) and a sequence of writes: any subset of them in any order per
apply (a batch's changes split across writes, redeliveries, repeats within one write), with
expiries in between. After every step the memory, Redis and Redis Cluster stores (which all
forget on expiry) must agree with each other, and Redis + PostgreSQL with a memory store that
never expires: on the apply results, the counts, and the /define answer for every pipeline and
step. The memory store is the domain's merge itself, so every store answers what it says.
"""

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from batch_conductor_service.domain.batch_state import BatchChange
from batch_conductor_service.domain.pipelines_file import load_pipelines
from batch_conductor_service.domain.resolution_rules import plan, prune
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.stores.durable import DurableBatchStateRepository
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from tests.integration.stores.builders import view
from tests.integration.stores.conftest import (
    TTL_SECONDS,
    ManualClock,
    make_record,
    make_redis_repository,
    redis_expiry,
)
from tests.support.change_strategies import changes
from tests.support.hypothesis_profiles import examples

GRAPH = load_pipelines(Path(__file__).resolve().parents[3] / "pipelines.yaml")
REQUESTS = (*GRAPH.pipelines, *GRAPH.steps)
# Figures quoted in docs/failures.md (the ci profile's; dev runs a tenth).
EXAMPLES = examples(40)


@dataclass
class Store:
    name: str
    repository: BatchStateRepositoryProtocol
    expire: Any


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[BatchChange], list[list[int] | None]]:
    pool = draw(st.lists(changes(batch_id="placeholder"), min_size=1, max_size=6))
    indexes = st.integers(min_value=0, max_value=len(pool) - 1)
    steps = draw(
        st.lists(st.none() | st.lists(indexes, min_size=1, max_size=5), min_size=1, max_size=6)
    )
    return pool, steps


async def answers(store: Store, batch: str) -> tuple[Any, dict[str, tuple[str, ...]]]:
    counts = await store.repository.counts(batch)
    defined = {name: prune(GRAPH, plan(GRAPH, name), counts).final_pipeline for name in REQUESTS}
    return view(counts), defined


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
async def test_every_store_gives_the_same_answers_to_the_same_changes(
    scenario: tuple[list[BatchChange], list[list[int] | None]],
    redis_client: Redis,
    redis_cluster_client: RedisCluster,
    pg_pool: asyncpg.Pool,
    pg_schema: str,
    metrics: BcsMetrics,
    key_prefix: str,
) -> None:
    pool, steps = scenario
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    # Fresh event ids per example: the stores outlive it (PostgreSQL keeps every id).
    renamed = {c.event_id: f"{batch}-{i}" for i, c in enumerate(pool)}
    pool = [
        c._replace(batch_id=batch, event_id=None if c.event_id is None else renamed[c.event_id])
        for c in pool
    ]
    clock = ManualClock()

    async def advance(_batch: str) -> None:
        clock.now += TTL_SECONDS + 1

    async def never(_batch: str) -> None:
        return None

    redis = make_redis_repository(redis_client, metrics, key_prefix)
    cluster = make_redis_repository(redis_cluster_client, metrics, key_prefix)
    durable_redis = make_redis_repository(redis_client, metrics, f"{key_prefix}-durable")
    forgetting = [
        Store("memory", InMemoryBatchStateRepository(TTL_SECONDS, clock=clock), advance),
        Store("redis", redis, redis_expiry(redis_client, redis)),
        Store("redis-cluster", cluster, redis_expiry(redis_client, cluster)),
    ]
    forgetting[2].expire = redis_expiry(redis_cluster_client, cluster)
    remembering = [
        Store("memory-forever", InMemoryBatchStateRepository(TTL_SECONDS * 1000), never),
        Store(
            "redis+postgresql",
            DurableBatchStateRepository(
                durable_redis, make_record(pg_pool, pg_schema, metrics), metrics
            ),
            redis_expiry(redis_client, durable_redis),
        ),
    ]
    for step in steps:
        for group in (forgetting, remembering):
            if step is None:
                for store in group:
                    await store.expire(batch)
                continue
            written = [pool[i] for i in step]
            results = {s.name: await s.repository.apply(written) for s in group}
            assert len({tuple(r) for r in results.values()}) == 1, results
        for group in (forgetting, remembering):
            seen = {s.name: await answers(s, batch) for s in group}
            first = next(iter(seen.values()))
            assert all(answer == first for answer in seen.values()), seen
