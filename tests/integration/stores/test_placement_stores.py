"""Essay placement on every store: the index and the kept results, then results placed by the
roster through the consumer's processor over each real repository, in both orders."""

import asyncio
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.crc import key_slot

from batch_conductor_service.consumer.batch_processor import EventBatchProcessor
from batch_conductor_service.consumer.fetched_batch import FetchedBatch
from batch_conductor_service.domain.batch_state import EssayOutcome
from batch_conductor_service.domain.placement import UnplacedResult
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import EssayPlacementProtocol
from batch_conductor_service.stores.placement.memory import InMemoryEssayPlacement
from batch_conductor_service.stores.placement.postgres import PostgresEssayPlacement
from batch_conductor_service.stores.placement.redis import RedisEssayPlacement
from batch_conductor_service.stores.redis.keys import BatchKeys
from common_core.topics import Topic
from tests.integration.stores.conftest import TTL_SECONDS, StoreUnderTest, breaker
from tests.support import event_factory as ev
from tests.support.consumed_message import Message
from tests.support.recording_dlq import RecordingDlqProducer

pytestmark = pytest.mark.integration
AT = datetime(2025, 6, 21, 12, tzinfo=UTC)


@pytest.fixture(params=["memory", "redis", "redis-cluster", "postgresql"])
def placement(request: pytest.FixtureRequest, metrics: BcsMetrics) -> EssayPlacementProtocol:
    return _placement(request, request.param, metrics)


def _placement(
    request: pytest.FixtureRequest, kind: str, metrics: BcsMetrics
) -> EssayPlacementProtocol:
    if kind == "memory":
        return InMemoryEssayPlacement(ttl_seconds=TTL_SECONDS)
    if kind == "postgresql":
        return PostgresEssayPlacement(
            request.getfixturevalue("pg_pool"),
            schema=request.getfixturevalue("pg_schema"),
            metrics=metrics,
            breaker=breaker("postgresql"),
            timeout_seconds=5.0,
        )
    client = request.getfixturevalue(
        "redis_cluster_client" if kind == "redis-cluster" else "redis_client"
    )
    return RedisEssayPlacement(
        client,
        ttl_seconds=TTL_SECONDS,
        metrics=metrics,
        breaker=breaker("redis"),
        key_prefix=request.getfixturevalue("key_prefix"),
    )


def result(essay_id: str, outcome: EssayOutcome = EssayOutcome.SUCCEEDED) -> UnplacedResult:
    return UnplacedResult(str(uuid.uuid4()), essay_id, "spellcheck", outcome, AT)


def ids(prefix: str, count: int) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"{prefix}-{tag}-{i}" for i in range(count)]


async def test_the_index_answers_which_batches_name_each_essay(
    placement: EssayPlacementProtocol,
) -> None:
    b1, b2 = ids("batch", 2)
    e1, e2, e3, unknown = ids("essay", 4)
    await placement.index_rosters({b1: [e1, e2], b2: [e2, e3]})
    await placement.index_rosters({b1: [e1]})  # again: nothing changes
    assert await placement.batches_of([e1, e2, e3, unknown]) == {
        e1: {b1},
        e2: {b1, b2},
        e3: {b2},
    }
    assert await placement.batches_of([]) == {}


async def test_kept_results_are_returned_by_essay_each_event_once(
    placement: EssayPlacementProtocol,
) -> None:
    e1, e2, e3 = ids("essay", 3)
    first, failed = result(e1), result(e2, EssayOutcome.FAILED)
    await placement.keep([first, failed])
    await placement.keep([first])
    kept = await placement.kept_for([e1, e2, e3])
    assert kept == {e1: [first], e2: [failed]}
    assert await placement.kept_for([]) == {}


async def test_a_large_roster_is_indexed_in_one_call(placement: EssayPlacementProtocol) -> None:
    # Hundreds of essays: on a cluster their keys spread over every master.
    (batch,) = ids("batch", 1)
    essays = ids("essay", 300)
    await placement.index_rosters({batch: essays})
    await placement.keep([result(e) for e in essays[::3]])
    assert set((await placement.batches_of(essays)).values()) == {frozenset({batch})}
    assert len(await placement.kept_for(essays)) == 100


async def test_redis_placement_keys_live_as_long_as_batch_state(
    redis_client: Redis, key_prefix: str, metrics: BcsMetrics
) -> None:
    placement = RedisEssayPlacement(
        redis_client,
        ttl_seconds=TTL_SECONDS,
        metrics=metrics,
        breaker=breaker("redis"),
        key_prefix=key_prefix,
    )
    await placement.index_rosters({"b1": ["e1"]})
    await placement.keep([result("e1")])
    for key in (placement.batches_key("e1"), placement.results_key("e1")):
        assert 0 < await redis_client.ttl(key) <= TTL_SECONDS


def test_an_essays_keys_share_a_slot_of_their_own_not_the_batchs() -> None:
    placement = RedisEssayPlacement(
        Redis(), ttl_seconds=1, metrics=BcsMetrics(CollectorRegistry()), breaker=breaker("redis")
    )
    essay_keys = {
        key_slot(placement.batches_key("e1").encode()),
        key_slot(placement.results_key("e1").encode()),
    }
    assert len(essay_keys) == 1
    assert key_slot(BatchKeys("bcs", "b1").events.encode()) not in essay_keys


def message(topic: str, document: dict[str, object]) -> Message:
    return Message(topic, 0, 0, orjson.dumps(document))


@pytest.mark.parametrize("order", ["result first", "roster first", "one fetch"])
async def test_a_result_naming_no_batch_lands_in_its_rosters_batch_on_each_store(
    store: StoreUnderTest,
    request: pytest.FixtureRequest,
    metrics: BcsMetrics,
    order: str,
) -> None:
    kind = request.node.callspec.params["store"]
    placement_kind = {"fakeredis": "memory", "redis+postgresql": "postgresql"}.get(kind, kind)
    placement = _placement(request, placement_kind, metrics)
    processor = EventBatchProcessor(
        store.repository, RecordingDlqProducer(), metrics, placement=placement
    )
    (batch,) = ids("batch", 1)
    e1, e2 = ids("essay", 2)
    results = [
        message(Topic.SPELLCHECK_COMPLETED, ev.spellcheck(None, e1)),
        message(Topic.SPELLCHECK_COMPLETED, ev.spellcheck(None, e2, "spellcheck_failed")),
    ]
    rosters = [message(Topic.BATCH_ESSAYS_READY, ev.ready(batch, [e1, e2]))]
    fetches = {
        "result first": [results, rosters],
        "roster first": [rosters, results],
        "one fetch": [results + rosters],
    }[order]
    for fetch in fetches:
        await processor.process(FetchedBatch.of(fetch))
    snapshot = await store.repository.get_snapshot(batch)
    assert snapshot.succeeded_for("spellcheck") == {e1}
    assert snapshot.failed_for("spellcheck") == {e2}


async def test_replicas_racing_over_a_real_store_lose_no_placement(
    store: StoreUnderTest, request: pytest.FixtureRequest, metrics: BcsMetrics
) -> None:
    kind = request.node.callspec.params["store"]
    placement_kind = {"fakeredis": "memory", "redis+postgresql": "postgresql"}.get(kind, kind)
    placement = _placement(request, placement_kind, metrics)
    replicas = [
        EventBatchProcessor(store.repository, RecordingDlqProducer(), metrics, placement=placement)
        for _ in range(4)
    ]
    batches = {batch: ids("essay", 5) for batch in ids("batch", 3)}
    messages = [
        message(Topic.BATCH_ESSAYS_READY, ev.ready(batch, essays))
        for batch, essays in batches.items()
    ] + [
        message(Topic.SPELLCHECK_COMPLETED, ev.spellcheck(None, essay))
        for essays in batches.values()
        for essay in essays
    ]
    # Each message alone on some replica, all at once: rosters and results race.
    await asyncio.gather(
        *(
            replicas[i % len(replicas)].process(FetchedBatch.of([m]))
            for i, m in enumerate(reversed(messages))
        )
    )
    for batch, essays in batches.items():
        assert (await store.repository.get_snapshot(batch)).succeeded_for("spellcheck") == set(
            essays
        )
