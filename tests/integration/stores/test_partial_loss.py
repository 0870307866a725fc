"""Losing some of a batch's Redis keys (eviction, a failover) cannot change an answer while
PostgreSQL holds the record: the loss is seen on read and on write, the batch is rebuilt from
the record, and the lost keys are back afterwards. Redis alone answers as for an unknown batch
(nothing complete) instead of from part of the facts, and no later write makes it trusted again;
shown with real eviction too (maxmemory with allkeys-lru), not only with DEL."""

import asyncio
import uuid

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from batch_conductor_service.domain.batch_state import BatchChange, RosterSource, step_completion
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.stores.durable import DurableBatchStateRepository
from batch_conductor_service.stores.redis.store import RedisBatchStateRepository
from common_core.enums import BatchPhaseStatus
from tests.integration.stores.builders import essays, outcome, roster, view
from tests.integration.stores.conftest import (
    OwnRedisServer,
    make_record,
    make_redis_repository,
)

OK = True
FAILED = False
STEPS = ("spellcheck", "nlp")
KEYS_OF_FACTS = ["facts", "outcomes"]


async def fill(repository: BatchStateRepositoryProtocol, batch: str) -> None:
    # spellcheck: every essay finished, yet the batch outcome is FAILED_CRITICALLY;
    # nlp: finished by its essays alone.
    await repository.apply(
        [
            roster(batch, RosterSource.REGISTERED, "e1", "e2", "e3"),
            roster(batch, RosterSource.READY, "e1", "e2"),
            essays(batch, "spellcheck", OK, "e1"),
            essays(batch, "spellcheck", FAILED, "e2"),
            outcome(batch, "spellcheck", BatchPhaseStatus.FAILED_CRITICALLY, 1),
            essays(batch, "nlp", OK, "e1", "e2"),
        ]
    )


async def answers(repository: BatchStateRepositoryProtocol, batch: str) -> dict[str, bool]:
    """Completion per step, as /define decides it."""
    counts = await repository.counts(batch)
    return {s: step_completion(s, counts).complete for s in STEPS}


def lose(redis: RedisBatchStateRepository, batch: str, name: str) -> str:
    keys = redis.keys(batch)
    return {"facts": keys.facts, "outcomes": keys.outcomes}[name]


@pytest.fixture
def durable(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str, pg_pool: asyncpg.Pool, pg_schema: str
) -> tuple[DurableBatchStateRepository, RedisBatchStateRepository]:
    redis = make_redis_repository(redis_client, metrics, key_prefix)
    return DurableBatchStateRepository(
        redis, make_record(pg_pool, pg_schema, metrics), metrics
    ), redis


@pytest.mark.parametrize("lost", KEYS_OF_FACTS)
async def test_a_lost_key_is_rebuilt_from_the_record_and_no_answer_changes(
    durable: tuple[DurableBatchStateRepository, RedisBatchStateRepository],
    redis_client: Redis,
    lost: str,
) -> None:
    repository, redis = durable
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await fill(repository, batch)
    before_view = view(await repository.counts(batch))
    before = await answers(repository, batch)
    assert before == {"spellcheck": False, "nlp": True}
    key = lose(redis, batch, lost)
    # Warm the counts, then lose the key: the counts must not outlive what they count either.
    await repository.counts(batch)
    await redis_client.delete(key, redis.keys(batch).counts)

    assert await answers(repository, batch) == before
    assert await redis_client.exists(key) == 1
    assert view(await repository.counts(batch)) == before_view
    assert await answers(redis, batch) == before  # Redis alone holds it whole again


@pytest.mark.parametrize("lost", KEYS_OF_FACTS)
async def test_a_write_to_a_batch_that_lost_a_key_rebuilds_it_first(
    durable: tuple[DurableBatchStateRepository, RedisBatchStateRepository],
    redis_client: Redis,
    lost: str,
) -> None:
    repository, redis = durable
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await fill(repository, batch)
    await redis_client.delete(lose(redis, batch, lost))

    # An earlier COMPLETED outcome arrives late: it recreates the lost key, which must not
    # hide that the later FAILED_CRITICALLY one was lost.
    late = outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_SUCCESSFULLY, 0)
    await repository.apply([late])

    assert (await answers(repository, batch))["spellcheck"] is False
    counts = (await redis.read_counts(batch)).counts
    assert counts is not None
    assert counts.latest["spellcheck"].status is BatchPhaseStatus.FAILED_CRITICALLY


@pytest.mark.parametrize("lost", KEYS_OF_FACTS)
async def test_redis_alone_answers_a_batch_that_lost_a_key_as_unknown_even_after_writes(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str, lost: str
) -> None:
    redis = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await fill(redis, batch)
    await redis_client.delete(lose(redis, batch, lost))

    assert (await redis.counts(batch)).is_empty
    # A later write, even one that recreates the lost key, must not make the part trusted.
    await redis.apply([outcome(batch, "nlp", BatchPhaseStatus.COMPLETED_SUCCESSFULLY, 2)])
    await redis.apply([outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_SUCCESSFULLY, 0)])
    assert await answers(redis, batch) == {"spellcheck": False, "nlp": False}
    assert metrics.registry.get_sample_value(
        "bcs_repository_errors_total", {"store": "redis", "operation": "lost_keys"}
    )


@pytest.mark.parametrize("with_record", [False, True], ids=["redis-alone", "redis+postgresql"])
async def test_real_eviction_never_prunes_a_step_that_is_not_complete(
    own_redis: OwnRedisServer,
    metrics: BcsMetrics,
    pg_pool: asyncpg.Pool,
    pg_schema: str,
    with_record: bool,
) -> None:
    """A backlog of batches into a Redis that evicts (maxmemory, allkeys-lru): each batch's
    spellcheck has every essay finished but a latest outcome FAILED_CRITICALLY, then another
    step's outcome arrives. Whatever Redis evicted, no batch's spellcheck may read complete."""
    client = Redis.from_url(own_redis.url, decode_responses=True)
    await client.config_set("maxmemory", "2mb")
    await client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        redis = make_redis_repository(client, metrics, "bcs")
        repository: BatchStateRepositoryProtocol = (
            DurableBatchStateRepository(redis, make_record(pg_pool, pg_schema, metrics), metrics)
            if with_record
            else redis
        )

        async def apply(changes: list[BatchChange]) -> None:
            # As the consumer does: a write refused while Redis is out of memory (its clients'
            # buffers are not evictable) is tried again.
            for _ in range(20):
                try:
                    await repository.apply(changes)
                    return
                except StateStoreUnavailableError:
                    await asyncio.sleep(0.5)
            raise AssertionError("Redis never took the write")

        batches = [f"batch-{i}-{uuid.uuid4().hex[:6]}" for i in range(3000)]
        ids = [f"essay-{i}" for i in range(20)]
        for start in range(0, len(batches), 10):
            await apply(
                [
                    change
                    for b in batches[start : start + 10]
                    for change in (
                        roster(b, RosterSource.READY, *ids),
                        essays(b, "spellcheck", OK, *ids),
                        outcome(b, "spellcheck", BatchPhaseStatus.FAILED_CRITICALLY, 1),
                    )
                ]
            )
        for start in range(0, len(batches), 10):
            await apply(
                [
                    outcome(b, "nlp", BatchPhaseStatus.COMPLETED_SUCCESSFULLY, 2)
                    for b in batches[start : start + 10]
                ]
            )
        evicted = int((await client.info("stats"))["evicted_keys"])
        assert evicted > 0
        wrong = [b for b in batches if (await answers(repository, b))["spellcheck"]]
        assert wrong == []
        if with_record:  # nothing lost for good: every batch still knows its nlp outcome
            assert all([(await answers(repository, b))["nlp"] for b in batches[:100]])
    finally:
        await client.aclose()


async def test_health_shows_an_eviction_policy_that_can_drop_batch_keys(
    own_redis: OwnRedisServer, metrics: BcsMetrics
) -> None:
    client = Redis.from_url(own_redis.url, decode_responses=True)
    try:
        redis = make_redis_repository(client, metrics, "bcs")
        await redis.check_eviction_policy()
        assert "maxmemory_policy" not in (await redis.health())["redis"].detail

        await client.config_set("maxmemory-policy", "volatile-lru")
        await redis.check_eviction_policy()
        detail = (await redis.health())["redis"].detail
        assert detail["maxmemory_policy"] == "volatile-lru"
    finally:
        await client.aclose()


async def test_a_redis_behind_the_record_after_a_failover_is_rebuilt_and_answers_right(
    durable: tuple[DurableBatchStateRepository, RedisBatchStateRepository],
    redis_client: Redis,
    metrics: BcsMetrics,
) -> None:
    repository, redis = durable
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply(
        [
            roster(batch, RosterSource.READY, "e1", "e2"),
            essays(batch, "spellcheck", OK, "e1", "e2"),
        ]
    )
    keys = redis.keys(batch)
    # A replica's copy of the batch, taken before the last write reached it...
    dumps = {key: await redis_client.dump(key) for key in (keys.facts, keys.outcomes)}
    await repository.apply([outcome(batch, "spellcheck", BatchPhaseStatus.FAILED_CRITICALLY, 1)])
    # ...promoted: consistent, but without the FAILED_CRITICALLY outcome.
    for key, value in dumps.items():
        await redis_client.delete(key)
        if value is not None:
            await redis_client.restore(key, 0, value, replace=True)
    await redis_client.delete(keys.counts)
    assert (await answers(redis, batch))["spellcheck"] is True

    assert await answers(repository, batch) == {"spellcheck": False, "nlp": False}
    # Repaired: Redis alone answers right again.
    assert (await answers(redis, batch))["spellcheck"] is False
    assert metrics.registry.get_sample_value(
        "bcs_repository_errors_total", {"store": "redis", "operation": "behind_record"}
    )


async def test_the_eviction_policy_of_a_redis_cluster_is_read_from_its_masters(
    redis_cluster_client: RedisCluster, metrics: BcsMetrics
) -> None:
    redis = make_redis_repository(redis_cluster_client, metrics, "bcs")
    await redis.check_eviction_policy()
    assert redis.eviction_policy == "noeviction"
    assert "maxmemory_policy" not in (await redis.health())["redis"].detail
