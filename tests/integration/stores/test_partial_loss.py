"""Losing some of a batch's Redis keys (eviction, a failover) cannot change an answer while
PostgreSQL holds the record: the loss is seen on read and on write, the batch is rebuilt from
the record, and the lost keys are back afterwards. Redis alone answers as for an unknown batch
(nothing complete) instead of from part of the facts."""

import uuid

import asyncpg
import pytest
from redis.asyncio import Redis

from batch_conductor_service.domain.batch_counts import BatchCounts
from batch_conductor_service.domain.batch_state import EssayOutcome, RosterSource
from batch_conductor_service.domain.completion import step_completion
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.durable import DurableBatchStateRepository
from batch_conductor_service.stores.redis.cluster import WaitingRedisCluster
from batch_conductor_service.stores.redis.keys import BatchKeys
from batch_conductor_service.stores.redis.repository import RedisBatchStateRepository
from common_core.enums import BatchPhaseStatus
from tests.integration.stores.builders import essays, outcome, roster, view
from tests.integration.stores.conftest import OwnRedisServer, make_record, make_redis_repository

OK = EssayOutcome.SUCCEEDED
FAILED = EssayOutcome.FAILED
STEPS = ("spellcheck", "nlp")
FACT_SETS = ["roster:registered", "roster:ready", "succeeded", "failed", "outcomes"]


async def fill(repository: object, batch: str) -> None:
    # spellcheck: every essay finished, yet the batch outcome is FAILED_CRITICALLY;
    # nlp: finished by its essays alone.
    await repository.apply_many(  # type: ignore[attr-defined]
        [
            roster(batch, RosterSource.REGISTERED, "e1", "e2", "e3"),
            roster(batch, RosterSource.READY, "e1", "e2"),
            essays(batch, "spellcheck", OK, "e1"),
            essays(batch, "spellcheck", FAILED, "e2"),
            outcome(batch, "spellcheck", BatchPhaseStatus.FAILED_CRITICALLY, 1),
            essays(batch, "nlp", OK, "e1", "e2"),
        ]
    )


async def answers(repository: object, batch: str) -> tuple[dict[str, bool], dict[str, bool]]:
    """Completion per step from the snapshot (/inspect) and from the counts (/define)."""
    snapshot = await repository.get_snapshot(batch)  # type: ignore[attr-defined]
    counts: BatchCounts = await repository.get_counts(batch)  # type: ignore[attr-defined]
    return (
        {s: step_completion(s, snapshot).complete for s in STEPS},
        {s: step_completion(s, counts).complete for s in STEPS},
    )


def lose(keys: BatchKeys, name: str) -> str:
    return {
        "roster:registered": keys.roster(RosterSource.REGISTERED),
        "roster:ready": keys.roster(RosterSource.READY),
        "succeeded": keys.succeeded,
        "failed": keys.failed,
        "outcomes": keys.outcomes,
    }[name]


@pytest.fixture
def durable(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str, pg_pool: asyncpg.Pool, pg_schema: str
) -> tuple[DurableBatchStateRepository, RedisBatchStateRepository]:
    redis = make_redis_repository(redis_client, metrics, key_prefix)
    return DurableBatchStateRepository(
        redis, make_record(pg_pool, pg_schema, metrics), metrics
    ), redis


@pytest.mark.parametrize("lost", FACT_SETS)
@pytest.mark.parametrize("read", ["snapshot", "counts"])
async def test_a_lost_set_is_rebuilt_from_the_record_and_no_answer_changes(
    durable: tuple[DurableBatchStateRepository, RedisBatchStateRepository],
    redis_client: Redis,
    lost: str,
    read: str,
) -> None:
    repository, redis = durable
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await fill(repository, batch)
    before_view = view(await repository.get_snapshot(batch))
    before = await answers(repository, batch)
    assert before == ({"spellcheck": False, "nlp": True}, {"spellcheck": False, "nlp": True})
    key = lose(redis.keys(batch), lost)
    # Warm the counts, then lose the key: the counts must not outlive what they count either.
    await repository.get_counts(batch)
    await redis_client.delete(key, redis.keys(batch).counts)

    if read == "snapshot":
        assert view(await repository.get_snapshot(batch)) == before_view
    else:
        assert await answers(repository, batch) == before

    assert await redis_client.exists(key) == 1
    assert await answers(repository, batch) == before
    assert view(await redis.get_snapshot(batch)) == before_view


async def test_a_write_to_a_batch_that_lost_a_set_rebuilds_it_first(
    durable: tuple[DurableBatchStateRepository, RedisBatchStateRepository],
    redis_client: Redis,
) -> None:
    repository, redis = durable
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await fill(repository, batch)
    await redis_client.delete(redis.keys(batch).outcomes)

    # An earlier COMPLETED outcome arrives late: it recreates the outcomes set, which must not
    # hide that the later FAILED_CRITICALLY one was lost.
    await repository.apply(outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_SUCCESSFULLY, 0))

    assert (await answers(repository, batch))[1]["spellcheck"] is False
    snapshot = await redis.get_snapshot(batch)
    assert snapshot.batch_outcomes["spellcheck"].status is BatchPhaseStatus.FAILED_CRITICALLY


@pytest.mark.parametrize("lost", FACT_SETS)
async def test_redis_alone_answers_a_batch_that_lost_a_set_as_unknown(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str, lost: str
) -> None:
    redis = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await fill(redis, batch)
    await redis_client.delete(lose(redis.keys(batch), lost))

    assert (await redis.get_snapshot(batch)).is_empty
    assert await answers(redis, batch) == (
        {"spellcheck": False, "nlp": False},
        {"spellcheck": False, "nlp": False},
    )
    assert metrics.registry.get_sample_value(
        "bcs_repository_errors_total", {"store": "redis", "operation": "lost_keys"}
    )


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


@pytest.mark.parametrize("read", ["snapshot", "counts"])
async def test_a_redis_behind_the_record_after_a_failover_is_rebuilt_and_answers_right(
    durable: tuple[DurableBatchStateRepository, RedisBatchStateRepository],
    redis_client: Redis,
    metrics: BcsMetrics,
    read: str,
) -> None:
    repository, redis = durable
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply_many(
        [
            roster(batch, RosterSource.READY, "e1", "e2"),
            essays(batch, "spellcheck", OK, "e1", "e2"),
        ]
    )
    keys = redis.keys(batch)
    # A replica's copy of the batch, taken before the last write reached it...
    dumps = {key: await redis_client.dump(key) for key in keys.all}
    await repository.apply(outcome(batch, "spellcheck", BatchPhaseStatus.FAILED_CRITICALLY, 1))
    # ...promoted: consistent, markers and all, but without the FAILED_CRITICALLY outcome.
    for key, value in dumps.items():
        await redis_client.delete(key)
        if value is not None:
            await redis_client.restore(key, 0, value, replace=True)
    await redis_client.delete(keys.counts)
    assert (await answers(redis, batch))[1]["spellcheck"] is True

    if read == "snapshot":
        snapshot = await repository.get_snapshot(batch)
        assert snapshot.batch_outcomes["spellcheck"].status is BatchPhaseStatus.FAILED_CRITICALLY
    assert await answers(repository, batch) == (
        {"spellcheck": False, "nlp": False},
        {"spellcheck": False, "nlp": False},
    )
    # Repaired: Redis alone answers right again.
    assert (await answers(redis, batch))[1]["spellcheck"] is False
    assert metrics.registry.get_sample_value(
        "bcs_repository_errors_total", {"store": "redis", "operation": "behind_record"}
    )


async def test_the_eviction_policy_of_a_redis_cluster_is_read_from_its_masters(
    redis_cluster_client: WaitingRedisCluster, metrics: BcsMetrics
) -> None:
    redis = make_redis_repository(redis_cluster_client, metrics, "bcs")
    await redis.check_eviction_policy()
    assert redis.eviction_policy == "noeviction"
    assert "maxmemory_policy" not in (await redis.health())["redis"].detail
