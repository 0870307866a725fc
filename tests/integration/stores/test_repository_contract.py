"""One contract, run unchanged against every batch state repository."""

import uuid
from datetime import timedelta

from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchChange,
    BatchCounts,
    RosterSource,
    StepCounts,
    StepOutcome,
)
from common_core.enums import BatchPhaseStatus
from tests.integration.stores.builders import T0, essays, outcome, roster, view
from tests.integration.stores.conftest import StoreUnderTest

OK = True
FAILED = False


async def apply(store: StoreUnderTest, change: BatchChange) -> ApplyResult:
    (result,) = await store.repository.apply([change])
    return result


async def counts(store: StoreUnderTest, batch_id: str) -> BatchCounts:
    return await store.repository.counts(batch_id)


def new_batch() -> str:
    return f"batch-{uuid.uuid4().hex[:8]}"


async def test_an_unknown_batch_has_empty_counts(store: StoreUnderTest) -> None:
    assert (await counts(store, new_batch())).is_empty


async def test_success_outranks_failure_in_either_order(store: StoreUnderTest) -> None:
    batch = new_batch()
    await apply(store, essays(batch, "spellcheck", FAILED, "e1", "e2"))
    await apply(store, essays(batch, "spellcheck", OK, "e1"))
    await apply(store, essays(batch, "spellcheck", OK, "e3"))
    await apply(store, essays(batch, "spellcheck", FAILED, "e3"))
    assert (await counts(store, batch)).counts_for("spellcheck") == StepCounts(2, 1)


async def test_steps_are_kept_apart(store: StoreUnderTest) -> None:
    batch = new_batch()
    await apply(store, essays(batch, "spellcheck", OK, "e1"))
    await apply(store, essays(batch, "nlp", FAILED, "e1"))
    assert view(await counts(store, batch))["steps"] == {
        "spellcheck": StepCounts(succeeded=1),
        "nlp": StepCounts(failed=1),
    }


async def test_a_redelivered_event_is_a_duplicate_and_changes_nothing(
    store: StoreUnderTest,
) -> None:
    batch = new_batch()
    change = essays(batch, "spellcheck", OK, "e1")
    assert await apply(store, change) is ApplyResult.APPLIED
    before = view(await counts(store, batch))
    assert await apply(store, change) is ApplyResult.DUPLICATE
    assert view(await counts(store, batch)) == before


async def test_a_ready_roster_replaces_a_registered_one_whatever_the_order(
    store: StoreUnderTest,
) -> None:
    first, second = new_batch(), new_batch()
    await apply(store, roster(first, RosterSource.REGISTERED, "e1", "e2", "e3"))
    await apply(store, roster(first, RosterSource.READY, "e1", "e2"))
    await apply(store, roster(second, RosterSource.READY, "e1", "e2"))
    await apply(store, roster(second, RosterSource.REGISTERED, "e1", "e2", "e3"))
    for batch in (first, second):
        assert view(await counts(store, batch))["roster"] == (2, RosterSource.READY)


async def test_rosters_from_the_same_source_are_united(store: StoreUnderTest) -> None:
    batch = new_batch()
    await apply(store, roster(batch, RosterSource.REGISTERED, "e1"))
    await apply(store, roster(batch, RosterSource.REGISTERED, "e2"))
    assert view(await counts(store, batch))["roster"] == (2, RosterSource.REGISTERED)


async def test_the_latest_batch_outcome_wins_whatever_the_arrival_order(
    store: StoreUnderTest,
) -> None:
    batch = new_batch()
    later = outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_SUCCESSFULLY, 10)
    earlier = outcome(batch, "spellcheck", BatchPhaseStatus.FAILED_CRITICALLY, 5)
    await apply(store, later)
    await apply(store, earlier)
    await apply(store, outcome(batch, "nlp", BatchPhaseStatus.FAILED_CRITICALLY, 1))
    assert view(await counts(store, batch))["latest"] == {
        "spellcheck": StepOutcome(BatchPhaseStatus.COMPLETED_SUCCESSFULLY, later.occurred_at),
        "nlp": StepOutcome(BatchPhaseStatus.FAILED_CRITICALLY, T0.replace(minute=1)),
    }


async def test_outcomes_at_the_same_time_are_ordered_by_status(store: StoreUnderTest) -> None:
    batch = new_batch()
    await apply(store, outcome(batch, "nlp", BatchPhaseStatus.COMPLETED_WITH_FAILURES, 3))
    await apply(store, outcome(batch, "nlp", BatchPhaseStatus.COMPLETED_SUCCESSFULLY, 3))
    latest = (await counts(store, batch)).latest
    assert latest["nlp"].status is BatchPhaseStatus.COMPLETED_WITH_FAILURES


async def test_apply_many_answers_per_change_in_order(store: StoreUnderTest) -> None:
    one, two = new_batch(), new_batch()
    a = essays(one, "spellcheck", OK, "e1")
    b = essays(two, "spellcheck", FAILED, "e9")
    c = essays(one, "spellcheck", FAILED, "e2")
    await apply(store, c)
    results = await store.repository.apply([a, b, a, c, roster(two, RosterSource.READY, "e9")])
    assert results == [
        ApplyResult.APPLIED,
        ApplyResult.APPLIED,
        ApplyResult.DUPLICATE,
        ApplyResult.DUPLICATE,
        ApplyResult.APPLIED,
    ]
    assert view(await counts(store, one))["steps"] == {"spellcheck": StepCounts(1, 1)}
    assert view(await counts(store, two))["roster"] == (1, RosterSource.READY)


async def test_apply_many_ends_where_applying_one_by_one_does(store: StoreUnderTest) -> None:
    batch = new_batch()
    changes = [
        essays(batch, "spellcheck", FAILED, "e1", "e2"),
        roster(batch, RosterSource.REGISTERED, "e1", "e2", "e3"),
        essays(batch, "spellcheck", OK, "e1"),
        outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_WITH_FAILURES, 2),
        outcome(batch, "spellcheck", BatchPhaseStatus.FAILED_CRITICALLY, 1),
    ]
    await store.repository.apply(changes)
    assert view(await counts(store, batch)) == {
        "roster": (3, RosterSource.REGISTERED),
        "steps": {"spellcheck": StepCounts(1, 1, 1, 1)},
        "latest": {
            "spellcheck": StepOutcome(
                BatchPhaseStatus.COMPLETED_WITH_FAILURES, T0.replace(minute=2)
            )
        },
        "last_event_at": T0.replace(minute=2),
    }


async def test_expired_state_is_gone_unless_a_durable_record_rebuilds_it(
    store: StoreUnderTest,
) -> None:
    batch = new_batch()
    await apply(store, roster(batch, RosterSource.READY, "e1"))
    await apply(store, essays(batch, "spellcheck", OK, "e1"))
    before = view(await counts(store, batch))
    await store.expire(batch)
    after = await counts(store, batch)
    if store.durable:
        assert view(after) == before
    else:
        assert after.is_empty


async def test_a_write_after_expiry_starts_from_what_the_store_still_knows(
    store: StoreUnderTest,
) -> None:
    batch = new_batch()
    first = essays(batch, "spellcheck", OK, "e1")
    await apply(store, first)
    await store.expire(batch)
    await apply(store, essays(batch, "spellcheck", OK, "e2"))
    expected = 2 if store.durable else 1
    succeeded = (await counts(store, batch)).counts_for("spellcheck").succeeded
    assert succeeded == expected
    # Only a durable record still remembers the event from before expiry.
    again = await apply(store, first)
    assert again is (ApplyResult.DUPLICATE if store.durable else ApplyResult.APPLIED)


async def test_an_empty_ready_roster_replaces_a_registered_one_whatever_the_order(
    store: StoreUnderTest,
) -> None:
    # A batch where no essay became ready: its roster is empty, not the registered one.
    first, second = new_batch(), new_batch()
    await apply(store, roster(first, RosterSource.REGISTERED, "e1", "e2"))
    await apply(store, roster(first, RosterSource.READY))
    await apply(store, roster(second, RosterSource.READY))
    await apply(store, roster(second, RosterSource.REGISTERED, "e1", "e2"))
    for batch in (first, second):
        assert view(await counts(store, batch))["roster"] == (0, RosterSource.READY)
        if store.durable:
            # The durable record keeps the empty roster too, and rebuilds Redis with it.
            await store.expire(batch)
            assert view(await counts(store, batch))["roster"] == (0, RosterSource.READY)


async def test_every_id_the_edge_accepts_round_trips_and_a_batch_stays_in_one_slot(
    store: StoreUnderTest,
) -> None:
    # Braces anywhere (a leading `}` once emptied the hash tag and scattered a batch's keys
    # across cluster slots), percent signs, non-ASCII, and the longest id the edge lets in.
    suffix = uuid.uuid4().hex[:6]
    ids = [
        f"}}{suffix}",
        f"{{{suffix}}}",
        f"a}}{{b%7D{suffix}",
        f"%{suffix}%",
        f"ä漢😀{suffix}",
        (suffix * 50)[:255],
    ]
    for batch in ids:
        essay = "é" * 255
        await store.repository.apply(
            [
                roster(batch, RosterSource.READY, essay, "e2"),
                essays(batch, "spellcheck", OK, essay, "e2"),
                outcome(batch, "spellcheck", BatchPhaseStatus.FAILED_CRITICALLY, 1),
            ]
        )
        found = view(await counts(store, batch))
        assert found["roster"] == (2, RosterSource.READY)
        assert found["steps"] == {"spellcheck": StepCounts(2, 0, 2, 0)}
        assert found["latest"]["spellcheck"].status is BatchPhaseStatus.FAILED_CRITICALLY


async def test_the_last_event_time_is_the_newest_applied_whatever_the_order(
    store: StoreUnderTest,
) -> None:
    batch = new_batch()
    assert (await counts(store, batch)).last_event_at is None
    newest = outcome(batch, "spellcheck", BatchPhaseStatus.COMPLETED_SUCCESSFULLY, 5)
    newest = newest._replace(occurred_at=newest.occurred_at + timedelta(microseconds=123457))
    await store.repository.apply(
        [essays(batch, "spellcheck", OK, "e1"), newest, roster(batch, RosterSource.READY, "e1")]
    )
    await apply(store, outcome(batch, "nlp", BatchPhaseStatus.FAILED_CRITICALLY, 1))
    assert (await counts(store, batch)).last_event_at == newest.occurred_at
    if store.durable:
        await store.expire(batch)
        assert (await counts(store, batch)).last_event_at == newest.occurred_at


async def test_twenty_thousand_identical_reports_leave_the_batch_as_one_did(
    store: StoreUnderTest,
) -> None:
    batch = new_batch()
    first = outcome(batch, "nlp", BatchPhaseStatus.COMPLETED_SUCCESSFULLY, 0, with_id=False)
    await apply(store, first)
    after_one = view(await counts(store, batch))
    repeats = [
        outcome(batch, "nlp", BatchPhaseStatus.COMPLETED_SUCCESSFULLY, m, with_id=False)
        for m in range(1, 20_001)
    ]
    for start in range(0, len(repeats), 2_000):
        results = await store.repository.apply(repeats[start : start + 2_000])
        assert set(results) == {ApplyResult.DUPLICATE}
    assert view(await counts(store, batch)) == after_one


async def test_alternating_reports_keep_one_outcome_per_step_and_status(
    store: StoreUnderTest,
) -> None:
    batch = new_batch()
    statuses = [BatchPhaseStatus.COMPLETED_SUCCESSFULLY, BatchPhaseStatus.FAILED_CRITICALLY]
    for minute in range(50):
        await apply(store, outcome(batch, "nlp", statuses[minute % 2], minute, with_id=False))
    latest = (await counts(store, batch)).latest["nlp"]
    assert latest == StepOutcome(BatchPhaseStatus.FAILED_CRITICALLY, T0.replace(minute=49))
