"""What the in-memory store adds to the repository contract (tests/integration/stores): its
TTL, its bound, its lock, and its parking lot's cap and expiry."""

import asyncio
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchChange,
    EssayResult,
    ParkedResult,
)
from batch_conductor_service.health import HealthState
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
    InMemoryEssayPlacement,
)

T0 = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def essay(event_id: str, essay_id: str, batch: str = "b1") -> BatchChange:
    return BatchChange(batch, T0, event_id, essays=(EssayResult(essay_id, "spellcheck", True),))


async def succeeded(repo: InMemoryBatchStateRepository, batch: str = "b1") -> int:
    return (await repo.counts(batch)).counts_for("spellcheck").succeeded


async def test_state_expires_after_the_ttl_and_writes_refresh_it() -> None:
    clock = FakeClock()
    repo = InMemoryBatchStateRepository(ttl_seconds=60, clock=clock)
    await repo.apply([essay("1", "e1")])
    clock.now += 50
    await repo.apply([essay("2", "e2")])
    clock.now += 50
    assert await succeeded(repo) == 2
    clock.now += 11
    assert (await repo.counts("b1")).is_empty


async def test_expired_event_ids_no_longer_count_as_duplicates() -> None:
    clock = FakeClock()
    repo = InMemoryBatchStateRepository(ttl_seconds=60, clock=clock)
    await repo.apply([essay("1", "e1")])
    clock.now += 61
    assert await repo.apply([essay("1", "e1")]) == [ApplyResult.APPLIED]


async def test_concurrent_writers_lose_nothing() -> None:
    repo = InMemoryBatchStateRepository(ttl_seconds=60)
    changes = [essay(str(i), f"e{i}") for i in range(200)]
    results = await asyncio.gather(*(repo.apply([c]) for c in changes + changes))
    assert [r for (r,) in results].count(ApplyResult.APPLIED) == 200
    assert await succeeded(repo) == 200


async def test_expired_batches_are_swept_by_later_writes_to_other_batches() -> None:
    clock = FakeClock()
    repo = InMemoryBatchStateRepository(ttl_seconds=60, clock=clock)
    await repo.apply([essay(f"old-{i}", "e1", batch=f"old-{i}") for i in range(100)])
    clock.now += 30
    await repo.apply([essay("kept", "e1", batch="kept")])
    clock.now += 31
    await repo.apply([essay("new", "e1", batch="new")])
    detail = (await repo.health())["repository"].detail
    assert detail["batches"] == 2
    assert await succeeded(repo, "kept") == 1


async def test_beyond_the_cap_the_batch_nearest_expiry_is_dropped() -> None:
    clock = FakeClock()
    repo = InMemoryBatchStateRepository(ttl_seconds=60, clock=clock, max_batches=3)
    for batch in ("b1", "b2", "b3"):
        await repo.apply([essay(f"{batch}-1", "e1", batch=batch)])
        clock.now += 1
    # Writing b1 again makes b2 the one nearest expiry.
    await repo.apply([essay("b1-2", "e2", batch="b1")])
    await repo.apply([essay("b4-1", "e1", batch="b4")])
    detail = (await repo.health())["repository"].detail
    assert (detail["batches"], detail["evicted"]) == (3, 1)
    assert (await repo.counts("b2")).is_empty
    for batch in ("b1", "b3", "b4"):
        assert not (await repo.counts(batch)).is_empty


async def test_health_reports_the_memory_backend_under_its_health_name() -> None:
    repo = InMemoryBatchStateRepository(ttl_seconds=60)
    health = (await repo.health())[repo.health_name]
    assert (health.state, health.detail["backend"]) == (HealthState.OK, "memory")


def parked(event_id: str, essay_id: str = "e1") -> ParkedResult:
    return ParkedResult(event_id, essay_id, "spellcheck", True, T0)


def lot(clock: FakeClock, max_parked: int = 3) -> tuple[InMemoryEssayPlacement, BcsMetrics]:
    metrics = BcsMetrics(CollectorRegistry())
    return InMemoryEssayPlacement(3600, 60, max_parked, metrics, clock), metrics


async def test_a_full_lot_refuses_results_and_shows_degraded_until_one_leaves() -> None:
    placement, _ = lot(FakeClock(), max_parked=2)
    assert await placement.park([parked("a"), parked("b"), parked("c")]) == [parked("c")]
    assert (await placement.health())["parking"].state is HealthState.DEGRADED
    await placement.unpark([parked("a")])
    assert await placement.park([parked("c")]) == []
    assert set(await placement.parked_for(["e1"])) == {"e1"}
    assert {r.event_id for r in (await placement.parked_for(["e1"]))["e1"]} == {"b", "c"}


async def test_parked_results_expire_and_are_counted() -> None:
    clock = FakeClock()
    placement, metrics = lot(clock)
    await placement.park([parked("a")])
    clock.now += 30
    await placement.park([parked("b", "e2")])
    clock.now += 31
    assert await placement.parked_for(["e1", "e2"]) == {"e2": [parked("b", "e2")]}
    assert (
        metrics.registry.get_sample_value("bcs_unplaced_results_total", {"outcome": "expired"}) == 1
    )


async def test_the_index_forgets_rosters_with_their_batch_state() -> None:
    clock = FakeClock()
    placement, _ = lot(clock)
    await placement.index_rosters({"b1": ["e1"], "b2": ["e1", "e2"]})
    assert await placement.batches_of(["e1", "e2", "e3"]) == {
        "e1": frozenset({"b1", "b2"}),
        "e2": frozenset({"b2"}),
    }
    clock.now += 3601
    assert await placement.batches_of(["e1"]) == {}
