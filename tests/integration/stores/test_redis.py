"""Redis specifics against the real server: concurrency, the WATCH retry and fallback paths,
TTLs, and one round trip per read whatever the batch size."""

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    OutOfMemoryError,
    RedisError,
    TryAgainError,
)

from batch_conductor_service.dev.embedded_broker import free_port
from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchChange,
    RosterSource,
    StepCounts,
)
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.stores.durable import DurableBatchStateRepository
from batch_conductor_service.stores.guard import CircuitState
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from batch_conductor_service.stores.redis.connection import make_redis_client
from batch_conductor_service.stores.redis.store import RedisBatchStateRepository
from common_core.enums import BatchPhaseStatus
from tests.integration.stores.builders import essays, outcome, roster, view
from tests.integration.stores.conftest import (
    TTL_SECONDS,
    CountingConnection,
    counting_redis,
    make_record,
    make_redis_repository,
    redis_guard,
    rival_writes_before_every_exec,
)

OK = True
FAILED = False


def counter(metrics: BcsMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def fifty_writers(batch: str) -> list[BatchChange]:
    """Essay i fails in writer i and succeeds in writer i+25 for the first 25 essays, so the
    outcome depends on every write landing."""
    changes = [essays(batch, "spellcheck", FAILED, f"e{i}") for i in range(50)]
    changes += [essays(batch, "spellcheck", OK, f"e{i}") for i in range(25)]
    changes.append(roster(batch, RosterSource.READY, *(f"e{i}" for i in range(50))))
    return changes


async def assert_fifty_writers_end_exact(repository: BatchStateRepositoryProtocol) -> None:
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    changes = fifty_writers(batch)
    results = await asyncio.gather(*(repository.apply([change]) for change in changes))
    assert [r for (r,) in results].count(ApplyResult.APPLIED) == len(changes)
    counts = await repository.counts(batch)
    assert counts.roster_size == 50
    assert counts.counts_for("spellcheck") == StepCounts(25, 25, 25, 25)


async def test_fifty_concurrent_writers_on_one_batch_end_with_exact_counts(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    await assert_fifty_writers_end_exact(repository)
    # 76 writers racing on one WATCHed batch: conflicts are certain, and were retried.
    assert counter(metrics, "bcs_repository_atomic_retries_total", operation="apply") > 0


async def test_fifty_concurrent_writers_end_exact_with_the_postgresql_record(
    redis_client: Redis,
    metrics: BcsMetrics,
    key_prefix: str,
    pg_pool: asyncpg.Pool,
    pg_schema: str,
) -> None:
    redis_repository = make_redis_repository(redis_client, metrics, key_prefix)
    record = make_record(pg_pool, pg_schema, metrics)
    await assert_fifty_writers_end_exact(
        DurableBatchStateRepository(redis_repository, record, metrics)
    )


async def test_the_fallback_after_the_last_watch_conflict_loses_nothing(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    changes = [
        *fifty_writers(batch)[::5],
        outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_WITH_FAILURES, 5),
        outcome(batch, "spellcheck", BatchPhaseStatus.FAILED_CRITICALLY, 1),
    ]
    duplicate = changes[0]
    async with rival_writes_before_every_exec(monkeypatch, repository.keys(batch).facts):
        results = [(await repository.apply([change]))[0] for change in changes]
        assert await repository.apply([duplicate]) == [ApplyResult.DUPLICATE]
    assert results == [ApplyResult.APPLIED] * len(changes)
    fallbacks = len(changes) + 1
    assert counter(metrics, "bcs_repository_fallback_writes_total", operation="apply") == fallbacks
    # Four retries before each fallback.
    assert (
        counter(metrics, "bcs_repository_atomic_retries_total", operation="apply") == 4 * fallbacks
    )
    reference = InMemoryBatchStateRepository(ttl_seconds=TTL_SECONDS)
    await reference.apply(changes)
    assert view(await repository.counts(batch)) == view(await reference.counts(batch))


async def test_every_key_of_a_batch_has_the_ttl(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply(
        [
            roster(batch, RosterSource.REGISTERED, "e1", "e2"),
            roster(batch, RosterSource.READY, "e1"),
            essays(batch, "spellcheck", OK, "e1"),
            essays(batch, "spellcheck", FAILED, "e2"),
            outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_WITH_FAILURES, 1),
        ]
    )
    await repository.counts(batch)
    keys = [key async for key in redis_client.scan_iter(match=f"{key_prefix}:*")]
    batch_keys = repository.keys(batch)
    assert sorted(keys) == sorted([batch_keys.facts, batch_keys.outcomes, batch_keys.counts])
    for key in keys:
        assert f"{{{batch}}}" in key
        assert 0 < await redis_client.ttl(key) <= TTL_SECONDS


async def test_a_write_refreshes_the_ttl_of_every_key(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply([roster(batch, RosterSource.READY, "e1")])
    keys = repository.keys(batch)
    for key in (keys.facts, keys.outcomes):
        await redis_client.expire(key, 10)
    await repository.apply([essays(batch, "spellcheck", OK, "e1")])
    for key in (keys.facts, keys.outcomes):
        assert await redis_client.ttl(key) > 10


@pytest.mark.parametrize("essay_count", [10, 10_000])
async def test_a_read_takes_one_round_trip_whatever_the_batch_size(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str, essay_count: int
) -> None:
    writer = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    ids = [f"essay-{i}" for i in range(essay_count)]
    await writer.apply(
        [
            roster(batch, RosterSource.REGISTERED, *ids),
            roster(batch, RosterSource.READY, *ids),
            essays(batch, "spellcheck", OK, *ids[: essay_count // 2]),
            essays(batch, "spellcheck", FAILED, *ids[essay_count // 2 :]),
            essays(batch, "nlp", OK, *ids),
            outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_WITH_FAILURES, 1),
        ]
    )
    async with counting_redis() as counted:
        reader = make_redis_repository(counted, metrics, key_prefix)
        await reader.counts("warms-the-script-cache")
        for _ in range(2):  # counted from the facts, then from the counts they left
            CountingConnection.sends = 0
            counts = await reader.counts(batch)
            assert CountingConnection.sends == 1
    assert counts.roster_size == essay_count
    assert counts.counts_for("nlp").roster_succeeded == essay_count


@pytest.mark.parametrize(
    "error",
    [OutOfMemoryError, ClusterDownError, MasterDownError, TryAgainError, BusyLoadingError],
)
async def test_redis_errors_that_mean_unavailable_open_the_breaker(
    metrics: BcsMetrics, monkeypatch: pytest.MonkeyPatch, error: type[RedisError]
) -> None:
    from fakeredis import FakeAsyncRedis

    async def refuse(*_: Any, **__: Any) -> Any:
        raise error("the server refused")

    monkeypatch.setattr(Pipeline, "execute", refuse)
    monkeypatch.setattr(FakeAsyncRedis, "evalsha", refuse)
    guard = redis_guard(metrics, threshold=2, reset_seconds=60)
    repository = make_redis_repository(
        FakeAsyncRedis(decode_responses=True), metrics, "p", guard=guard
    )
    with pytest.raises(StateStoreUnavailableError, match=error.__name__):
        await repository.counts("b1")
    with pytest.raises(StateStoreUnavailableError, match=error.__name__):
        await repository.apply([essays("b1", "spellcheck", OK, "e1")])
    assert guard.state is CircuitState.OPEN
    assert counter(metrics, "bcs_repository_errors_total", store="redis", operation="read") == 1
    assert counter(metrics, "bcs_repository_errors_total", store="redis", operation="apply") == 1


async def test_a_field_that_does_not_parse_is_skipped_and_counted_not_raised(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batch = f"batch-{uuid.uuid4().hex[:8]}"
    await repository.apply(
        [
            essays(batch, "spellcheck", OK, "e1"),
            outcome(batch, "nlp", BatchPhaseStatus.FAILED_CRITICALLY, 1),
        ]
    )
    keys = repository.keys(batch)
    await redis_client.hset(keys.facts, "s:no separator", "")
    await redis_client.zadd(keys.outcomes, {"nlp": 1, "nlp\x1fno such status": 2})
    await redis_client.delete(keys.counts)
    counts = await repository.counts(batch)
    assert counts.counts_for("spellcheck") == StepCounts(succeeded=1)
    assert counts.latest["nlp"].status is BatchPhaseStatus.FAILED_CRITICALLY
    assert counter(metrics, "bcs_repository_errors_total", store="redis", operation="parse") == 3


async def test_sixty_four_readers_of_a_large_batch_never_fail_another_batchs_read(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    large, small = (f"batch-{uuid.uuid4().hex[:8]}" for _ in range(2))
    ids = [f"essay-{i}" for i in range(10_000)]
    await repository.apply(
        [
            roster(large, RosterSource.READY, *ids),
            essays(large, "spellcheck", OK, *ids),
            roster(small, RosterSource.READY, "e1"),
            essays(small, "spellcheck", OK, "e1"),
        ]
    )
    for _ in range(3):
        # Each round the large batch's counts are gone (as after a write) and counted again.
        await redis_client.delete(repository.keys(large).counts)
        answers = await asyncio.gather(
            *(repository.counts(large) for _ in range(64)),
            *(repository.counts(small) for _ in range(16)),
        )
        assert {a.counts_for("spellcheck").roster_succeeded for a in answers[:64]} == {10_000}
        assert {a.counts_for("spellcheck").roster_succeeded for a in answers[64:]} == {1}
    assert counter(metrics, "bcs_repository_errors_total", store="redis", operation="read") == 0


async def seed_small_batches(repository: RedisBatchStateRepository, count: int) -> list[str]:
    """Batches of one essay each, batch i with i + 1 essays done, so no two answers agree."""
    batches = [f"batch-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    changes = []
    for index, batch in enumerate(batches):
        ids = [f"e{i}" for i in range(index + 1)]
        changes += [roster(batch, RosterSource.READY, *ids), essays(batch, "nlp", OK, *ids)]
    await repository.apply(changes)
    return batches


@pytest.mark.parametrize("turns_apart", [0, 1], ids=["asked-in-one-turn", "a-turn-apart"])
async def test_reads_in_flight_together_share_one_round_trip_and_keep_their_own_answers(
    metrics: BcsMetrics, key_prefix: str, turns_apart: int
) -> None:
    # A turn apart, as requests that arrived together reach their reads.
    async with counting_redis() as counted:
        repository = make_redis_repository(counted, metrics, key_prefix)
        batches = await seed_small_batches(repository, 5)
        alone = [view(await repository.counts(batch)) for batch in batches]
        CountingConnection.sends = 0
        readers = []
        for batch in batches:
            readers.append(asyncio.ensure_future(repository.counts(batch)))
            for _ in range(turns_apart):
                await asyncio.sleep(0)
        together = await asyncio.gather(*readers)
        assert CountingConnection.sends == 1
    assert [view(counts) for counts in together] == alone
    assert [c.counts_for("nlp").roster_succeeded for c in together] == [1, 2, 3, 4, 5]


async def test_shared_reads_load_the_script_again_after_redis_forgot_it(
    own_redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(own_redis_client, metrics, key_prefix)
    batches = await seed_small_batches(repository, 5)
    await repository.counts(batches[0])
    await own_redis_client.script_flush()  # as a restarted or failed-over server
    together = await asyncio.gather(*(repository.counts(batch) for batch in batches))
    assert [c.counts_for("nlp").roster_succeeded for c in together] == [1, 2, 3, 4, 5]


async def test_one_read_that_fails_in_a_shared_round_trip_fails_alone(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    good = await seed_small_batches(repository, 3)
    broken = f"batch-{uuid.uuid4().hex[:8]}"
    await redis_client.set(repository.keys(broken).facts, "not a hash")
    answers = await asyncio.gather(
        *(repository.counts(batch) for batch in good),
        repository.counts(broken),
        return_exceptions=True,
    )
    assert [a.counts_for("nlp").roster_succeeded for a in answers[:3]] == [1, 2, 3]
    assert isinstance(answers[3], RedisError)
    assert "WRONGTYPE" in str(answers[3])


async def test_a_reader_that_gives_up_leaves_the_others_their_answers(
    redis_client: Redis, metrics: BcsMetrics, key_prefix: str
) -> None:
    repository = make_redis_repository(redis_client, metrics, key_prefix)
    batches = await seed_small_batches(repository, 3)
    readers = [asyncio.ensure_future(repository.counts(batch)) for batch in batches]
    await asyncio.sleep(0)  # every reader has joined the round trip, which has not been sent
    readers[1].cancel()
    first, _, last = await asyncio.gather(*readers, return_exceptions=True)
    assert readers[1].cancelled()
    assert first.counts_for("nlp").roster_succeeded == 1
    assert last.counts_for("nlp").roster_succeeded == 3


async def test_reads_sharing_a_round_trip_to_a_redis_that_is_down_each_answer_unavailable(
    metrics: BcsMetrics, key_prefix: str
) -> None:
    client = make_redis_client(
        f"redis://127.0.0.1:{free_port()}/0",
        cluster=False,
        max_connections=4,
        timeout_seconds=0.5,
    )
    repository = make_redis_repository(client, metrics, key_prefix)
    try:
        answers = await asyncio.gather(
            *(repository.counts(f"b{i}") for i in range(3)), return_exceptions=True
        )
    finally:
        await client.aclose()
    assert all(isinstance(a, StateStoreUnavailableError) for a in answers), answers
    assert counter(metrics, "bcs_repository_errors_total", store="redis", operation="read") == 3
