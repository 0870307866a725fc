import asyncio
from datetime import UTC, datetime, timedelta

from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchOutcome,
    BatchStateChange,
    EssayOutcome,
    EssayStepOutcome,
    RosterSource,
)
from batch_conductor_service.health import HealthState
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
)
from common_core.enums import BatchPhaseStatus

T0 = datetime(2025, 6, 21, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def essay(
    event_id: str, essay_id: str, result: EssayOutcome, batch: str = "b1"
) -> BatchStateChange:
    return BatchStateChange(
        event_id=event_id,
        batch_id=batch,
        occurred_at=T0,
        essay_outcomes=(EssayStepOutcome(essay_id, "spellcheck", result),),
    )


def phase(event_id: str, status: BatchPhaseStatus, minutes: int) -> BatchStateChange:
    return BatchStateChange(
        event_id=event_id,
        batch_id="b1",
        occurred_at=T0 + timedelta(minutes=minutes),
        batch_outcome_step="spellcheck",
        batch_outcome=BatchOutcome(status, T0 + timedelta(minutes=minutes)),
    )


def roster(event_id: str, source: RosterSource, *ids: str) -> BatchStateChange:
    return BatchStateChange(
        event_id=event_id,
        batch_id="b1",
        occurred_at=T0,
        roster=frozenset(ids),
        roster_source=source,
    )


async def test_unknown_batch_has_an_empty_snapshot() -> None:
    snapshot = await InMemoryBatchStateRepository(ttl_seconds=60).get_snapshot("nobody")
    assert snapshot.is_empty
    assert snapshot.batch_id == "nobody"


async def test_success_is_never_undone_by_a_later_failure() -> None:
    repo = InMemoryBatchStateRepository(ttl_seconds=60)
    await repo.apply(essay("1", "e1", EssayOutcome.SUCCEEDED))
    await repo.apply(essay("2", "e1", EssayOutcome.FAILED))
    snapshot = await repo.get_snapshot("b1")
    assert snapshot.succeeded_for("spellcheck") == {"e1"}
    assert snapshot.failed_for("spellcheck") == frozenset()


async def test_failure_then_success_ends_succeeded() -> None:
    repo = InMemoryBatchStateRepository(ttl_seconds=60)
    await repo.apply(essay("1", "e1", EssayOutcome.FAILED))
    assert (await repo.get_snapshot("b1")).failed_for("spellcheck") == {"e1"}
    await repo.apply(essay("2", "e1", EssayOutcome.SUCCEEDED))
    snapshot = await repo.get_snapshot("b1")
    assert snapshot.succeeded_for("spellcheck") == {"e1"}
    assert snapshot.failed_for("spellcheck") == frozenset()


async def test_same_event_twice_is_a_duplicate() -> None:
    repo = InMemoryBatchStateRepository(ttl_seconds=60)
    assert await repo.apply(essay("1", "e1", EssayOutcome.FAILED)) is ApplyResult.APPLIED
    assert await repo.apply(essay("1", "e1", EssayOutcome.FAILED)) is ApplyResult.DUPLICATE


async def test_latest_batch_outcome_wins_in_either_arrival_order() -> None:
    early = phase("a", BatchPhaseStatus.COMPLETED_SUCCESSFULLY, 1)
    late = phase("b", BatchPhaseStatus.FAILED_CRITICALLY, 2)
    for order in ([early, late], [late, early]):
        repo = InMemoryBatchStateRepository(ttl_seconds=60)
        assert await repo.apply_many(order) == [ApplyResult.APPLIED, ApplyResult.APPLIED]
        stored = (await repo.get_snapshot("b1")).batch_outcomes["spellcheck"]
        assert stored.status is BatchPhaseStatus.FAILED_CRITICALLY


async def test_ready_roster_replaces_registered_whatever_the_order() -> None:
    registered = roster("r", RosterSource.REGISTERED, "e1", "e2", "e3")
    ready = roster("s", RosterSource.READY, "e1", "e2")
    for order in ([registered, ready], [ready, registered]):
        repo = InMemoryBatchStateRepository(ttl_seconds=60)
        await repo.apply_many(order)
        snapshot = await repo.get_snapshot("b1")
        assert snapshot.roster == {"e1", "e2"}
        assert snapshot.roster_source is RosterSource.READY


async def test_state_expires_after_the_ttl_and_writes_refresh_it() -> None:
    clock = FakeClock()
    repo = InMemoryBatchStateRepository(ttl_seconds=60, clock=clock)
    await repo.apply(essay("1", "e1", EssayOutcome.SUCCEEDED))
    clock.now += 50
    await repo.apply(essay("2", "e2", EssayOutcome.SUCCEEDED))
    clock.now += 50
    assert (await repo.get_snapshot("b1")).succeeded_for("spellcheck") == {"e1", "e2"}
    clock.now += 11
    assert (await repo.get_snapshot("b1")).is_empty


async def test_expired_event_ids_no_longer_count_as_duplicates() -> None:
    clock = FakeClock()
    repo = InMemoryBatchStateRepository(ttl_seconds=60, clock=clock)
    await repo.apply(essay("1", "e1", EssayOutcome.SUCCEEDED))
    clock.now += 61
    assert await repo.apply(essay("1", "e1", EssayOutcome.SUCCEEDED)) is ApplyResult.APPLIED


async def test_concurrent_writers_lose_nothing() -> None:
    repo = InMemoryBatchStateRepository(ttl_seconds=60)
    changes = [essay(str(i), f"e{i}", EssayOutcome.SUCCEEDED) for i in range(200)]
    results = await asyncio.gather(*(repo.apply(c) for c in changes + changes))
    assert results.count(ApplyResult.APPLIED) == 200
    assert len((await repo.get_snapshot("b1")).succeeded_for("spellcheck")) == 200


async def test_batches_are_kept_apart() -> None:
    repo = InMemoryBatchStateRepository(ttl_seconds=60)
    await repo.apply(essay("1", "e1", EssayOutcome.SUCCEEDED, batch="b1"))
    assert (await repo.get_snapshot("b2")).is_empty


async def test_health_reports_the_memory_backend() -> None:
    health = await InMemoryBatchStateRepository(ttl_seconds=60).health()
    assert health["repository"].state is HealthState.OK
    assert health["repository"].detail["backend"] == "memory"


async def test_a_step_whose_failed_essays_all_succeeded_later_lists_no_failures() -> None:
    # As the Redis and PostgreSQL stores answer: the snapshot is assembled by BatchFacts.
    repo = InMemoryBatchStateRepository(ttl_seconds=60)
    await repo.apply(essay("1", "e1", EssayOutcome.FAILED))
    await repo.apply(essay("2", "e1", EssayOutcome.SUCCEEDED))
    assert (await repo.get_snapshot("b1")).failed == {}


async def test_the_health_name_is_the_key_the_repository_reports_under() -> None:
    repo = InMemoryBatchStateRepository(ttl_seconds=60)
    assert repo.health_name in await repo.health()


async def test_expired_batches_are_swept_by_later_writes_to_other_batches() -> None:
    clock = FakeClock()
    repo = InMemoryBatchStateRepository(ttl_seconds=60, clock=clock)
    for i in range(100):
        await repo.apply(essay(f"old-{i}", "e1", EssayOutcome.SUCCEEDED, batch=f"old-{i}"))
    clock.now += 30
    await repo.apply(essay("kept", "e1", EssayOutcome.SUCCEEDED, batch="kept"))
    clock.now += 31

    await repo.apply(essay("new", "e1", EssayOutcome.SUCCEEDED, batch="new"))

    detail = (await repo.health())["repository"].detail
    assert detail["batches"] == 2
    assert (await repo.get_snapshot("kept")).succeeded


async def test_beyond_the_cap_the_batch_nearest_expiry_is_dropped() -> None:
    clock = FakeClock()
    repo = InMemoryBatchStateRepository(ttl_seconds=60, clock=clock, max_batches=3)
    for batch in ("b1", "b2", "b3"):
        await repo.apply(essay(f"{batch}-1", "e1", EssayOutcome.SUCCEEDED, batch=batch))
        clock.now += 1
    # Writing b1 again makes b2 the one nearest expiry.
    await repo.apply(essay("b1-2", "e2", EssayOutcome.SUCCEEDED, batch="b1"))

    await repo.apply(essay("b4-1", "e1", EssayOutcome.SUCCEEDED, batch="b4"))

    detail = (await repo.health())["repository"].detail
    assert (detail["batches"], detail["evicted"]) == (3, 1)
    assert (await repo.get_snapshot("b2")).is_empty
    for batch in ("b1", "b3", "b4"):
        assert not (await repo.get_snapshot(batch)).is_empty
