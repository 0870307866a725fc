"""Essay placement on every store: the index, the parking lot (its cap, its expiry, each result
placed once), then results placed by the roster through the consumer's pipeline over each real
repository, in both orders and with replicas racing."""

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.crc import key_slot

from batch_conductor_service.consumer.pipeline import EventPipeline
from batch_conductor_service.domain.batch_state import ParkedResult
from batch_conductor_service.health import HealthState
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import EssayPlacementProtocol
from batch_conductor_service.stores.memory import InMemoryEssayPlacement
from batch_conductor_service.stores.postgres.parking import PostgresEssayPlacement
from batch_conductor_service.stores.redis.layout import BatchKeys
from batch_conductor_service.stores.redis.parking import RedisEssayPlacement
from common_core.topics import Topic
from tests.integration.stores.conftest import (
    TTL_SECONDS,
    StoreUnderTest,
    postgres_guard,
    redis_guard,
)
from tests.support import event_factory as ev
from tests.support.consumed_message import Message
from tests.support.loop_turns import loop_turns
from tests.support.recording_dlq import RecordingDlqProducer

pytestmark = pytest.mark.integration
AT = datetime(2025, 6, 21, 12, tzinfo=UTC)
PARKED_TTL = 60


class Clock:
    """Seconds since the epoch, as the Redis lot scores expiries; moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


Factory = Callable[..., EssayPlacementProtocol]


@pytest.fixture(params=["memory", "redis", "redis-cluster", "postgresql"])
def placement(request: pytest.FixtureRequest, metrics: BcsMetrics) -> EssayPlacementProtocol:
    return _placement(request, request.param, metrics)


@pytest.fixture(params=["memory", "redis", "postgresql"])
def make_lot(request: pytest.FixtureRequest, metrics: BcsMetrics) -> Factory:
    """Placements of one kind with a cap or a clock of the test's; the store's fixtures are
    resolved here, before the test's own loop runs."""
    _placement(request, request.param, metrics)
    return lambda **options: _placement(request, request.param, metrics, **options)


def _placement(
    request: pytest.FixtureRequest,
    kind: str,
    metrics: BcsMetrics,
    max_parked: int = 1000,
    clock: Clock | None = None,
) -> EssayPlacementProtocol:
    if kind == "memory":
        return InMemoryEssayPlacement(
            TTL_SECONDS, PARKED_TTL, max_parked, metrics, clock or time.monotonic
        )
    if kind == "postgresql":
        return PostgresEssayPlacement(
            request.getfixturevalue("pg_pool"),
            postgres_guard(metrics),
            metrics,
            schema=request.getfixturevalue("pg_schema"),
            parked_ttl_seconds=PARKED_TTL,
            max_parked=max_parked,
        )
    client = request.getfixturevalue(
        "redis_cluster_client" if kind == "redis-cluster" else "redis_client"
    )
    return RedisEssayPlacement(
        client,
        redis_guard(metrics),
        metrics,
        ttl_seconds=TTL_SECONDS,
        parked_ttl_seconds=PARKED_TTL,
        max_parked=max_parked,
        key_prefix=request.getfixturevalue("key_prefix"),
        clock=clock or time.time,
    )


def result(essay_id: str, succeeded: bool = True) -> ParkedResult:
    return ParkedResult(str(uuid.uuid4()), essay_id, "spellcheck", succeeded, AT)


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


async def test_parked_results_are_returned_by_essay_each_event_once_until_unparked(
    placement: EssayPlacementProtocol,
) -> None:
    e1, e2, e3 = ids("essay", 3)
    first, failed = result(e1), result(e2, succeeded=False)
    assert await placement.park([first, failed]) == []
    assert await placement.park([first]) == []
    assert await placement.parked_for([e1, e2, e3]) == {e1: [first], e2: [failed]}
    assert await placement.parked_for([]) == {}
    await placement.unpark([first])
    assert await placement.parked_for([e1, e2]) == {e2: [failed]}


async def test_a_large_roster_is_indexed_and_read_in_one_call(
    placement: EssayPlacementProtocol,
) -> None:
    # More essays than one Redis script call takes, a third of them on both rosters; on a
    # cluster their keys spread over every master.
    first, second = ids("batch", 2)
    essays = ids("essay", 1200)
    await placement.index_rosters({first: essays[:800], second: essays[400:]})
    await placement.park([result(e) for e in essays[::3]])
    assert await placement.batches_of(essays) == {
        essay: {first} if n < 400 else {first, second} if n < 800 else {second}
        for n, essay in enumerate(essays)
    }
    assert len(await placement.parked_for(essays)) == 400


async def test_a_full_lot_refuses_results_says_so_and_takes_them_again_once_room_is_made(
    make_lot: Factory,
) -> None:
    placement = make_lot(max_parked=2)
    a, b, c = (result(e) for e in ids("essay", 3))
    assert await placement.park([a, b, c]) == [c]
    health = (await placement.health())["parking"]
    assert (health.state, health.detail["full"]) == (HealthState.DEGRADED, True)
    await placement.unpark([a])
    assert (await placement.health())["parking"].state is HealthState.OK
    assert await placement.park([c]) == []


async def test_parked_results_expire_and_are_counted(
    make_lot: Factory, metrics: BcsMetrics, pg_pool: asyncpg.Pool, pg_schema: str
) -> None:
    clock = Clock()
    placement = make_lot(clock=clock)
    old, new = result(ids("essay", 1)[0]), result(ids("essay", 1)[0])
    await placement.park([old])
    clock.now += PARKED_TTL + 1
    if isinstance(placement, PostgresEssayPlacement):  # it keeps time by its server's clock
        async with pg_pool.acquire() as conn:
            await conn.execute(
                f"UPDATE \"{pg_schema}\".parked_results SET expires_at = now() - interval '1 s'"
            )
    await placement.park([new])
    assert await placement.parked_for([old.essay_id, new.essay_id]) == {new.essay_id: [new]}
    expired = {"outcome": "expired"}
    assert metrics.registry.get_sample_value("bcs_unplaced_results_total", expired) == 1


def redis_placement(client: Redis, key_prefix: str, metrics: BcsMetrics) -> RedisEssayPlacement:
    return RedisEssayPlacement(
        client,
        redis_guard(metrics),
        metrics,
        ttl_seconds=TTL_SECONDS,
        parked_ttl_seconds=PARKED_TTL,
        max_parked=10,
        key_prefix=key_prefix,
    )


async def test_redis_placement_keys_live_as_long_as_they_are_needed(
    redis_client: Redis, key_prefix: str, metrics: BcsMetrics
) -> None:
    placement = redis_placement(redis_client, key_prefix, metrics)
    await placement.index_rosters({"b1": ["e1"]})
    await placement.park([result("e1")])
    assert 0 < await redis_client.ttl(placement.batches_key("e1")) <= TTL_SECONDS
    assert 0 < await redis_client.ttl(placement.parked_key("e1")) <= PARKED_TTL


async def test_redis_indexes_a_fetch_of_rosters_in_rounds_and_an_essay_keeps_every_batch(
    redis_client: Redis, key_prefix: str, metrics: BcsMetrics
) -> None:
    # A fetch's rosters can name 20,000 essays; built and packed in one piece they held the event
    # loop, which the HTTP API shares, for about 100 ms. No turn builds more than a round's keys.
    placement = redis_placement(redis_client, key_prefix, metrics)
    batches, essays = ids("batch", 60), ids("essay", 6000)
    # Each batch names 200 essays, and each essay is named by two batches 30 apart: rounds of
    # 2,000 essays put them in different rounds.
    rosters = {b: essays[(n % 30) * 200 :][:200] for n, b in enumerate(batches)}
    batches_key = placement.batches_key
    async with loop_turns() as turns:
        placement.batches_key = turns.counting(batches_key)
        await placement.index_rosters(rosters)
    placement.batches_key = batches_key

    assert len(turns.calls_at) == 12_000
    assert turns.most_calls_in_one_turn() <= 2_000
    expected: dict[str, set[str]] = {}
    for batch_id, named in rosters.items():
        for essay_id in named:
            expected.setdefault(essay_id, set()).add(batch_id)
    assert await placement.batches_of(essays) == expected
    assert all(len(found) == 2 for found in expected.values())


def test_an_essays_keys_share_a_slot_of_their_own_not_the_batchs() -> None:
    metrics = BcsMetrics(CollectorRegistry())
    placement = RedisEssayPlacement(
        Redis(), redis_guard(metrics), metrics, ttl_seconds=1, parked_ttl_seconds=1, max_parked=1
    )
    essay_keys = {
        key_slot(placement.batches_key("e1").encode()),
        key_slot(placement.parked_key("e1").encode()),
    }
    assert len(essay_keys) == 1
    assert key_slot(BatchKeys("bcs", "b1").facts.encode()) not in essay_keys


def message(topic: str, document: dict[str, object]) -> Message:
    return Message(topic, 0, 0, orjson.dumps(document))


def pipeline(
    store: StoreUnderTest, placement: EssayPlacementProtocol, metrics: BcsMetrics
) -> EventPipeline:
    return EventPipeline(
        store.repository, placement, RecordingDlqProducer(), metrics, max_records=100
    )


def placement_for(store_kind: str) -> str:
    return {"fakeredis": "memory", "redis+postgresql": "postgresql"}.get(store_kind, store_kind)


@pytest.mark.parametrize("order", ["result first", "roster first", "one fetch"])
async def test_a_result_naming_no_batch_lands_in_its_rosters_batch_on_each_store(
    store: StoreUnderTest,
    request: pytest.FixtureRequest,
    metrics: BcsMetrics,
    order: str,
) -> None:
    placement = _placement(request, placement_for(request.node.callspec.params["store"]), metrics)
    consumer = pipeline(store, placement, metrics)
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
        await consumer.handle(fetch)
    counts = (await store.repository.counts(batch)).counts_for("spellcheck")
    assert (counts.roster_succeeded, counts.roster_failed) == (1, 1)
    # Placed once: nothing is left parked.
    assert await placement.parked_for([e1, e2]) == {}


async def test_replicas_racing_over_a_real_store_lose_no_placement(
    store: StoreUnderTest, request: pytest.FixtureRequest, metrics: BcsMetrics
) -> None:
    placement = _placement(request, placement_for(request.node.callspec.params["store"]), metrics)
    replicas = [pipeline(store, placement, metrics) for _ in range(4)]
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
        *(replicas[i % len(replicas)].handle([m]) for i, m in enumerate(reversed(messages)))
    )
    for batch, essays in batches.items():
        counts = await store.repository.counts(batch)
        assert counts.counts_for("spellcheck").roster_succeeded == len(essays)
