"""The pipeline (consumer/pipeline.py): every step an event takes (read, translate, place, store,
dead-letter, commit) on the in-memory stores, and the failure rule: an outage of our own
infrastructure commits nothing and seeks the fetch back; anything else is pinned on the one
message that causes it, which is dead-lettered while the rest is stored."""

import asyncio
import itertools
import random
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from batch_conductor_service.consumer import pipeline as pipeline_module
from batch_conductor_service.consumer.pipeline import offset_ranges
from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchChange,
    BatchFacts,
    ParkedResult,
)
from batch_conductor_service.errors import DeadLetterUnavailableError, StateStoreUnavailableError
from batch_conductor_service.health import ComponentHealth
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
    InMemoryEssayPlacement,
)
from common_core.topics import CurrentTopic, Topic
from tests.support import consumer_scenarios as scenario
from tests.support import event_factory as ev
from tests.support.consumed_message import Message, msg
from tests.support.hypothesis_profiles import examples
from tests.support.loop_turns import loop_turns
from tests.support.pipeline_harness import (
    TTL_SECONDS,
    ManualClock,
    PipelineHarness,
    memory_harness,
)
from tests.support.recording_dlq import RecordingDlqProducer

READY = Topic.BATCH_ESSAYS_READY.value
SPELLCHECK = Topic.SPELLCHECK_COMPLETED.value
# The event_factory's default stamp.
EVENT_TIME = datetime(2025, 6, 21, 12, 0, 0, 123456, tzinfo=UTC)


class FakeConsumer:
    """What consume_once calls of an AIOKafkaConsumer: it hands out one fetch, then nothing,
    and keeps what is committed and sought."""

    def __init__(
        self,
        records: Sequence[Message],
        *,
        commit_error: BaseException | None = None,
        revoked: Collection[TopicPartition] = (),
    ) -> None:
        self.fetches = [list(records)]
        self.commit_error = commit_error
        self.revoked = set(revoked)
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: dict[TopicPartition, int] = {}

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        records = self.fetches.pop(0) if self.fetches else []
        fetched: dict[TopicPartition, list[Any]] = {}
        for record in records:
            fetched.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
        return fetched

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.commit_error is not None:
            raise self.commit_error
        self.commits.append(dict(offsets))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp in self.revoked:
            raise IllegalStateError(f"No current assignment for partition {tp}")
        self.seeks[tp] = offset


async def consume(harness: PipelineHarness, consumer: FakeConsumer) -> int:
    return await harness.pipeline.consume_once(consumer)  # type: ignore[arg-type]


async def facts(harness: PipelineHarness, batch_id: str) -> BatchFacts:
    repository = harness.repository
    assert isinstance(repository, InMemoryBatchStateRepository)
    return await repository.facts(batch_id) or BatchFacts(batch_id)


# --- Read, translate, store, count ------------------------------------------------------------


async def test_good_events_are_stored_and_counted_as_applied() -> None:
    harness = memory_harness()

    await harness.handle(
        [
            msg(READY, 0, ev.ready("b1", ["e1", "e2"])),
            msg(SPELLCHECK, 0, ev.spellcheck("b1", "e1")),
            msg(SPELLCHECK, 1, ev.spellcheck("b1", "e2", "spellcheck_failed")),
        ]
    )

    stored = await facts(harness, "b1")
    assert stored.succeeded == {"spellcheck": {"e1"}}
    assert stored.failed == {"spellcheck": {"e2"}}
    assert (await harness.counts("b1")).roster_size == 2
    assert harness.processed(READY, "applied") == 1
    assert harness.processed(SPELLCHECK, "applied") == 2
    assert harness.processed(SPELLCHECK, "duplicate") == 0
    assert harness.dead_letters.sent == []
    assert harness.sample("bcs_consumer_batch_duration_seconds_count") == 1


async def test_a_redelivered_event_is_counted_as_duplicate_and_not_applied_twice() -> None:
    harness = memory_harness()
    event = ev.spellcheck("b1", "e1")

    await harness.handle([msg(SPELLCHECK, 0, event)])
    await harness.handle([msg(SPELLCHECK, 0, event), msg(SPELLCHECK, 1, event)])

    assert harness.processed(SPELLCHECK, "applied") == 1
    assert harness.processed(SPELLCHECK, "duplicate") == 2
    assert harness.dead_letters.sent == []
    assert (await harness.step("b1", "spellcheck")).succeeded == 1


async def test_a_message_that_is_not_json_is_dead_lettered_with_its_context() -> None:
    harness = memory_harness()

    await harness.handle([Message(READY, 3, 41, b'{"not json": ')])

    [record] = harness.dead_letters.sent
    assert (record.original_topic, record.partition, record.offset) == (READY, 3, 41)
    assert (record.reason, record.payload) == ("invalid_json", b'{"not json": ')
    assert record.error
    assert harness.dead_lettered(READY, "invalid_json") == 1
    assert harness.processed(READY, "dead_lettered") == 1
    assert harness.processed(READY, "applied") == 0


async def test_a_message_without_a_value_is_dead_lettered_as_invalid_json() -> None:
    harness = memory_harness()

    await harness.handle([Message(READY, 0, 7, None)])

    [record] = harness.dead_letters.sent
    assert (record.reason, record.payload, record.offset) == ("invalid_json", b"", 7)


async def test_a_message_of_the_wrong_shape_is_dead_lettered_with_its_correlation_id() -> None:
    harness = memory_harness()
    document = ev.ready("b1", ["e1"], correlation_id="corr-1")
    del document["data"]["batch_id"]

    await harness.handle([msg(READY, 5, document, partition=1)])

    [record] = harness.dead_letters.sent
    assert record.reason == "schema_validation_failed"
    assert "batch_id" in record.error
    assert record.correlation_id == "corr-1"
    assert (record.original_topic, record.partition, record.offset) == (READY, 1, 5)
    assert record.payload == ev.encode(document)


async def test_good_and_bad_messages_of_one_fetch_are_each_handled() -> None:
    harness = memory_harness()

    await harness.handle(
        [
            msg(READY, 0, ev.ready("b1", ["e1"])),
            Message(READY, 0, 1, b"garbage"),
            msg(READY, 2, ev.ready("b2", ["e9"])),
        ]
    )

    assert harness.processed(READY, "applied") == 2
    assert harness.processed(READY, "dead_lettered") == 1
    assert [r.offset for r in harness.dead_letters.sent] == [1]
    assert (await harness.counts("b2")).roster_size == 1


async def test_a_result_naming_no_batch_is_parked_not_dead_lettered() -> None:
    harness = memory_harness()

    await harness.handle([msg(SPELLCHECK, 0, ev.spellcheck(None, "e1"))])

    assert harness.dead_letters.sent == []
    assert harness.processed(SPELLCHECK, "parked") == 1
    assert harness.unplaced("parked") == 1


async def test_a_non_terminal_result_naming_no_batch_changes_nothing_and_is_ignored() -> None:
    harness = memory_harness()
    await harness.handle([msg(READY, 0, ev.ready("b1", ["e1"]))])

    await harness.handle([msg(SPELLCHECK, 0, ev.spellcheck(None, "e1", "awaiting_spellcheck"))])

    assert (await harness.step("b1", "spellcheck")).succeeded == 0
    assert harness.processed(SPELLCHECK, "ignored") == 1
    assert await harness.placement.parked_for(["e1"]) == {}


# --- Commit and seek --------------------------------------------------------------------------


async def test_a_fetch_is_committed_one_past_the_last_offset_of_each_partition() -> None:
    harness = memory_harness()
    consumer = FakeConsumer(
        [
            msg(READY, 10, ev.ready("b1", ["e1"])),
            msg(SPELLCHECK, 4, ev.spellcheck("b1", "e1"), partition=2),
            msg(READY, 11, ev.ready("b1", ["e2"])),
            # A dead-lettered message is done with too: its offset is committed.
            Message(READY, 0, 12, b"garbage"),
            Message(SPELLCHECK, 1, 30, b"garbage"),
        ]
    )

    assert await consume(harness, consumer) == 5

    assert consumer.commits == [
        {
            TopicPartition(READY, 0): 13,
            TopicPartition(SPELLCHECK, 2): 5,
            TopicPartition(SPELLCHECK, 1): 31,
        }
    ]
    assert consumer.seeks == {}


async def test_an_empty_fetch_commits_nothing_and_stores_nothing() -> None:
    harness = memory_harness(repository=StoreDown())
    consumer = FakeConsumer([])

    assert await consume(harness, consumer) == 0
    assert consumer.commits == []


class StoreDown(InMemoryBatchStateRepository):
    def __init__(self) -> None:
        super().__init__(TTL_SECONDS)

    async def apply(self, changes: Sequence[BatchChange]) -> list[ApplyResult]:
        raise StateStoreUnavailableError("memory", "switched off by the test")


async def test_a_store_outage_seeks_the_fetch_back_commits_nothing_and_dead_letters_nothing() -> (
    None
):
    harness = memory_harness(repository=StoreDown())
    consumer = FakeConsumer(
        [
            msg(READY, 7, ev.ready("b1", ["e1"])),
            Message(READY, 0, 8, b"garbage"),
            msg(SPELLCHECK, 3, ev.spellcheck("b1", "e1"), partition=1),
        ]
    )

    with pytest.raises(StateStoreUnavailableError):
        await consume(harness, consumer)

    assert consumer.commits == []
    assert consumer.seeks == {TopicPartition(READY, 0): 7, TopicPartition(SPELLCHECK, 1): 3}
    assert harness.dead_letters.sent == []
    assert harness.processed(READY, "retried") == 2
    assert harness.processed(SPELLCHECK, "retried") == 1
    assert harness.processed(READY, "applied") == 0
    assert harness.processed(READY, "dead_lettered") == 0
    assert harness.dead_lettered(READY, "invalid_json") == 0


async def test_a_dead_letter_outage_seeks_back_after_the_good_events_are_stored() -> None:
    harness = memory_harness(dead_letters=RecordingDlqProducer(failing=True))
    consumer = FakeConsumer([msg(READY, 0, ev.ready("b1", ["e1"])), Message(READY, 0, 1, b"x")])

    with pytest.raises(DeadLetterUnavailableError):
        await consume(harness, consumer)

    # Stored first, so the fetch read again finds the good event a duplicate.
    assert (await harness.counts("b1")).roster_size == 1
    assert consumer.commits == []
    assert consumer.seeks == {TopicPartition(READY, 0): 0}
    assert harness.processed(READY, "dead_lettered") == 0
    assert harness.dead_lettered(READY, "invalid_json") == 0


class PlacementDown(InMemoryEssayPlacement):
    async def batches_of(self, essay_ids: Collection[str]) -> dict[str, frozenset[str]]:
        raise StateStoreUnavailableError("parking", "switched off by the test")


async def test_a_parking_outage_is_an_outage_too() -> None:
    harness = memory_harness()
    harness.pipeline._placement = PlacementDown(TTL_SECONDS, TTL_SECONDS, 10, harness.metrics)
    consumer = FakeConsumer([msg(SPELLCHECK, 4, ev.spellcheck(None, "e1"))])

    with pytest.raises(StateStoreUnavailableError):
        await consume(harness, consumer)

    assert consumer.seeks == {TopicPartition(SPELLCHECK, 0): 4}
    assert (consumer.commits, harness.dead_letters.sent) == ([], [])


async def test_a_commit_the_group_rejects_is_left_to_the_partitions_new_owner() -> None:
    harness = memory_harness()
    consumer = FakeConsumer(
        [msg(READY, 0, ev.ready("b1", ["e1"]))], commit_error=CommitFailedError("rebalanced")
    )

    with capture_logs() as logs:
        assert await consume(harness, consumer) == 1

    assert "consumer_commit_rejected" in [line["event"] for line in logs]
    assert (await harness.counts("b1")).roster_size == 1


async def test_seeking_back_a_partition_revoked_meanwhile_is_left_to_its_new_owner() -> None:
    harness = memory_harness(repository=StoreDown())
    revoked = TopicPartition(READY, 0)
    consumer = FakeConsumer(
        [msg(READY, 0, ev.ready("b1", ["e1"])), msg(SPELLCHECK, 2, ev.spellcheck("b1", "e1"))],
        revoked=[revoked],
    )

    with pytest.raises(StateStoreUnavailableError):
        await consume(harness, consumer)

    assert consumer.seeks == {TopicPartition(SPELLCHECK, 0): 2}


records = st.lists(
    st.builds(
        Message,
        topic=st.sampled_from([READY, SPELLCHECK]),
        partition=st.integers(0, 2),
        offset=st.integers(0, 10**12),
    ),
    min_size=1,
    max_size=30,
    unique_by=lambda m: (m.topic, m.partition, m.offset),
)


def _by_partition(fetch: list[Message]) -> dict[TopicPartition, list[int]]:
    offsets: dict[TopicPartition, list[int]] = {}
    for message in fetch:
        offsets.setdefault(TopicPartition(message.topic, message.partition), []).append(
            message.offset
        )
    return offsets


@settings(deadline=None)
@given(fetch=records, dead_letters_down=st.booleans())
def test_a_fetch_commits_after_its_last_offsets_or_seeks_back_to_its_first(
    fetch: list[Message], dead_letters_down: bool
) -> None:
    # Every message is unreadable: it is dead-lettered, or the dead-letter topic is down.
    expected = _by_partition(fetch)
    harness = memory_harness(dead_letters=RecordingDlqProducer(failing=dead_letters_down))
    consumer = FakeConsumer(fetch)

    async def run() -> None:
        if dead_letters_down:
            with pytest.raises(DeadLetterUnavailableError):
                await consume(harness, consumer)
        else:
            await consume(harness, consumer)

    asyncio.run(run())

    if dead_letters_down:
        assert consumer.commits == []
        assert consumer.seeks == {tp: min(o) for tp, o in expected.items()}
    else:
        assert consumer.commits == [{tp: max(o) + 1 for tp, o in expected.items()}]
        assert consumer.seeks == {}
    assert offset_ranges(fetch) == {
        f"{tp.topic}/{tp.partition}": [min(o), max(o)] for tp, o in expected.items()
    }


# --- The failure rule: poison -----------------------------------------------------------------


class PickyRepository(InMemoryBatchStateRepository):
    """Fails any write holding a change of one of the `poison` batches, `failures` times each
    (forever by default), with an error that is not an outage; keeps the writes it is given."""

    def __init__(self, poison: set[str], failures: int = 1_000, error: type = ValueError):
        super().__init__(TTL_SECONDS)
        self.poison = poison
        self.left = dict.fromkeys(poison, failures)
        self.error = error
        self.calls: list[list[str]] = []

    async def apply(self, changes: Sequence[BatchChange]) -> list[ApplyResult]:
        self.calls.append([change.batch_id for change in changes])
        for change in changes:
            if change.batch_id in self.poison and self.left[change.batch_id] > 0:
                self.left[change.batch_id] -= 1
                raise self.error(f"cannot store {change.batch_id}")
        return await super().apply(changes)


def spellchecks(batches: list[str]) -> list[Message]:
    return [msg(SPELLCHECK, i, ev.spellcheck(b, f"e{i}")) for i, b in enumerate(batches)]


async def test_a_poison_message_is_isolated_the_others_are_stored_and_all_are_committed() -> None:
    repository = PickyRepository({"bad"})
    harness = memory_harness(repository=repository)
    batches = ["b0", "b1", "bad", "b3", "b4", "b5", "b6"]
    consumer = FakeConsumer(spellchecks(batches))

    await consume(harness, consumer)

    assert consumer.commits == [{TopicPartition(SPELLCHECK, 0): len(batches)}]
    for i, batch in enumerate(batches):
        stored = (await facts(harness, batch)).succeeded
        assert stored == ({} if batch == "bad" else {"spellcheck": {f"e{i}"}})
    [record] = harness.dead_letters.sent
    assert (record.reason, record.offset) == ("processing_failed", 2)
    assert "ValueError: cannot store bad" in record.error
    assert "3 times" in record.error
    assert harness.errors("isolating") == 1


async def test_isolation_tries_the_poison_a_bounded_number_of_times_and_the_rest_once() -> None:
    repository = PickyRepository({"bad"})
    harness = memory_harness(repository=repository, max_attempts=4)
    batches = [f"b{i}" for i in range(20)] + ["bad"]

    await harness.handle(spellchecks(batches))

    first, *alone = repository.calls
    assert sorted(first) == sorted(batches)
    assert all(len(call) == 1 for call in alone)
    tries = [call[0] for call in alone]
    assert tries.count("bad") == 4
    assert sorted(b for b in tries if b != "bad") == sorted(batches[:-1])


async def test_several_poison_messages_are_each_dead_lettered() -> None:
    harness = memory_harness(repository=PickyRepository({"bad1", "bad2"}, error=KeyError))

    await harness.handle(spellchecks(["bad1", "b1", "b2", "bad2", "b4"]))

    assert sorted(r.offset for r in harness.dead_letters.sent) == [0, 3]
    assert {r.reason for r in harness.dead_letters.sent} == {"processing_failed"}
    assert (await harness.step("b4", "spellcheck")).succeeded == 1


async def test_a_failure_that_passes_within_the_bounded_tries_dead_letters_nothing() -> None:
    harness = memory_harness(repository=PickyRepository({"flaky"}, failures=2))

    await harness.handle(spellchecks(["b0", "flaky"]))

    assert harness.dead_letters.sent == []
    assert (await facts(harness, "flaky")).succeeded == {"spellcheck": {"e1"}}


async def test_an_outage_while_isolating_still_propagates_and_dead_letters_nothing() -> None:
    repository = PickyRepository({"bad"})
    harness = memory_harness(repository=repository)
    original = repository.apply

    async def failing_later(changes: Sequence[BatchChange]) -> list[ApplyResult]:
        if repository.calls:
            raise StateStoreUnavailableError("memory", "down")
        return await original(changes)

    repository.apply = failing_later  # type: ignore[method-assign]

    with pytest.raises(StateStoreUnavailableError):
        await harness.handle(spellchecks(["b0", "bad"]))
    assert harness.dead_letters.sent == []


async def test_a_translation_that_raises_an_unforeseen_error_is_dead_lettered_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = pipeline_module.translate

    # Not "bad": its letters are hex digits, so a random event id could hold it too.
    def broken(topic: str, value: bytes | None, *args: Any) -> Any:
        if value is not None and b"poison" in value:
            raise OverflowError("date value out of range")
        return real(topic, value, *args)

    monkeypatch.setattr(pipeline_module, "translate", broken)
    harness = memory_harness()
    consumer = FakeConsumer(spellchecks(["b0", "poison", "b2"]))

    await consume(harness, consumer)

    assert consumer.commits == [{TopicPartition(SPELLCHECK, 0): 3}]
    [record] = harness.dead_letters.sent
    assert (record.reason, record.offset) == ("processing_failed", 1)
    assert "OverflowError" in record.error
    assert (await harness.step("b2", "spellcheck")).succeeded == 1


def bug_at_offset_1(harness: PipelineHarness) -> None:
    """A bug nobody foresaw, that the message at offset 1 triggers whatever it is fetched with."""
    real_handle = harness.pipeline.handle

    async def buggy(records: Sequence[Any]) -> None:
        if any(r.offset == 1 for r in records):
            raise RuntimeError("a bug")
        await real_handle(records)

    harness.pipeline.handle = buggy  # type: ignore[method-assign]


async def test_a_fetch_failing_with_a_bug_is_handled_message_by_message_and_committed() -> None:
    harness = memory_harness()
    bug_at_offset_1(harness)
    consumer = FakeConsumer(spellchecks(["b0", "b1", "b2"]))

    assert await consume(harness, consumer) == 3

    assert consumer.commits == [{TopicPartition(SPELLCHECK, 0): 3}]
    [record] = harness.dead_letters.sent
    assert (record.offset, record.reason) == (1, "processing_failed")
    assert "RuntimeError: a bug" in record.error
    assert (await harness.step("b0", "spellcheck")).succeeded == 1
    assert (await harness.step("b2", "spellcheck")).succeeded == 1
    assert harness.errors("unexpected") == 1


async def test_an_outage_while_handling_one_by_one_seeks_back_from_that_message() -> None:
    harness = memory_harness()
    real_handle = harness.pipeline.handle

    async def buggy_then_down(records: Sequence[Any]) -> None:
        if len(records) > 1:
            raise RuntimeError("a bug")
        if records[0].offset == 1:
            raise StateStoreUnavailableError("memory", "down")
        await real_handle(records)

    harness.pipeline.handle = buggy_then_down  # type: ignore[method-assign]
    consumer = FakeConsumer(spellchecks(["b0", "b1", "b2"]))

    with pytest.raises(StateStoreUnavailableError):
        await consume(harness, consumer)

    assert consumer.seeks == {TopicPartition(SPELLCHECK, 0): 1}
    assert (consumer.commits, harness.dead_letters.sent) == ([], [])
    assert (await harness.step("b0", "spellcheck")).succeeded == 1


async def test_a_dead_letter_outage_while_handling_one_by_one_seeks_back_from_that_message() -> (
    None
):
    # The message that fails alone cannot be dead-lettered: it and those after it are read
    # again, not skipped by the next fetch.
    harness = memory_harness()
    bug_at_offset_1(harness)
    harness.dead_letters.failing = True
    consumer = FakeConsumer(spellchecks(["b0", "b1", "b2"]))

    with pytest.raises(DeadLetterUnavailableError):
        await consume(harness, consumer)

    assert consumer.seeks == {TopicPartition(SPELLCHECK, 0): 1}
    assert (consumer.commits, harness.dead_letters.sent) == ([], [])
    assert (await harness.step("b0", "spellcheck")).succeeded == 1
    assert (await harness.step("b2", "spellcheck")).succeeded == 0


async def test_a_result_placed_into_two_batches_that_cannot_be_stored_is_dead_lettered_once() -> (
    None
):
    repository = scenario.FailingFor(InMemoryBatchStateRepository(TTL_SECONDS), set())
    shared = memory_harness()
    harness = PipelineHarness(repository, shared.placement, shared.metrics, shared.registry)
    await harness.fetch(scenario.roster("b1", ["e1"]), scenario.roster("b2", ["e1"]))
    result = scenario.result("e1")
    repository.failing = {result[1]["event_id"]}

    [message] = await harness.fetch(result)

    [record] = harness.dead_letters.sent
    assert (record.offset, record.reason) == (message.offset, "processing_failed")
    assert harness.processed(SPELLCHECK, "dead_lettered") == 1


# --- Placement: results that name no batch ----------------------------------------------------


async def test_a_result_whose_essay_a_roster_names_is_placed_on_arrival() -> None:
    await scenario.placed_on_arrival(memory_harness())


async def test_a_result_is_parked_until_a_roster_names_its_essay() -> None:
    await scenario.parked_until_a_roster_names_it(memory_harness())


async def test_a_result_is_placed_once_never_into_a_batch_whose_roster_comes_later() -> None:
    await scenario.placed_once(memory_harness())


async def test_a_result_is_dead_lettered_as_unplaceable_when_the_lot_is_full() -> None:
    await scenario.refused_when_the_lot_is_full(memory_harness(max_parked=1))


async def test_an_expired_parked_result_is_gone() -> None:
    clock = ManualClock()
    harness = memory_harness(store_clock=clock, parked_ttl_seconds=60)

    async def past_expiry() -> None:
        clock.now += 61

    await scenario.expired_results_are_gone(harness, past_expiry)
    assert harness.unplaced("expired") == 1


async def test_a_placed_change_that_fails_to_store_is_isolated_and_stays_parked() -> None:
    repository = scenario.FailingFor(InMemoryBatchStateRepository(TTL_SECONDS), set())
    registry_harness = memory_harness()
    harness = PipelineHarness(
        repository,
        registry_harness.placement,
        registry_harness.metrics,
        registry_harness.registry,
    )
    await scenario.placed_change_that_fails_is_isolated(harness, repository)


async def test_a_parked_result_stays_parked_while_any_of_its_placements_failed() -> None:
    repository = PickyRepository({"b2"})
    harness = memory_harness(repository=repository)
    result = scenario.result("e1")
    await harness.fetch(result)

    await harness.fetch(scenario.roster("b1", ["e1"]), scenario.roster("b2", ["e1"]))

    assert (await harness.step("b1", "spellcheck")).roster_succeeded == 1
    assert [r.offset for r in harness.dead_letters.sent] == [2]  # b2's roster: poison
    assert await scenario.parked(harness, "e1") == {result[1]["event_id"]}

    # b2's roster again (replayed from the dead-letter topic) places it, and it leaves the lot.
    repository.poison = set()
    await harness.fetch(scenario.roster("b2", ["e1"]))
    assert (await harness.step("b2", "spellcheck")).roster_succeeded == 1
    assert (await harness.step("b1", "spellcheck")).roster_succeeded == 1
    assert await scenario.parked(harness, "e1") == set()


async def test_a_result_and_its_roster_in_one_fetch_meet_in_either_order() -> None:
    for order in ("result first", "roster first"):
        harness = memory_harness()
        both = [scenario.result("e1"), scenario.roster("b1", ["e1"])]
        await harness.fetch(*(both if order == "result first" else both[::-1]))
        assert (await harness.step("b1", "spellcheck")).roster_succeeded == 1, order
        assert await harness.placement.parked_for(["e1"]) == {}, order


async def test_a_redelivered_result_counts_once() -> None:
    harness = memory_harness()
    result = scenario.result("e1")
    await harness.fetch(result)
    await harness.fetch(scenario.roster("b1", ["e1"]), result)
    await harness.fetch(result)

    assert (await facts(harness, "b1")).succeeded == {"spellcheck": {"e1"}}
    # Parked once; placed on arrival with the roster of the same fetch, and on redelivery.
    assert (harness.unplaced("parked"), harness.unplaced("placed_on_arrival")) == (1, 2)
    assert harness.dead_letters.sent == []
    # Stored new once (with the roster); the redelivery found it there.
    counted = {o: harness.processed(SPELLCHECK, o) for o in ("parked", "applied", "duplicate")}
    assert counted == {"parked": 1, "applied": 1, "duplicate": 1}


BATCHES = {"b1": ["e1", "e2"], "b2": ["e2", "e3"], "b3": ["e4"]}
RESULTS = {"e1": True, "e2": True, "e3": False, "e4": True, "e5": True}


def current_result(essay_id: str, succeeded: bool) -> tuple[str, dict[str, Any]]:
    data = {
        "entity_id": essay_id,
        "batch_id": "",
        "correlation_id": str(uuid.uuid4()),
        "status": "completed" if succeeded else "failed",
        "processing_duration_ms": 5,
        "timestamp": "2025-06-21T12:00:00Z",
    }
    topic = CurrentTopic.SPELLCHECK_PHASE_COMPLETED.value
    return topic, ev.envelope(topic, data)


def world() -> list[tuple[str, dict[str, Any]]]:
    """Every roster, and every result naming no batch (in both generations' shapes)."""
    rosters = [scenario.roster(batch, essays) for batch, essays in BATCHES.items()]
    results = [
        scenario.result(e, "spellchecked_success" if ok else "spellcheck_failed")
        if i % 2
        else current_result(e, ok)
        for i, (e, ok) in enumerate(RESULTS.items())
    ]
    return rosters + results


def essay_of(event: tuple[str, dict[str, Any]]) -> str | None:
    data = event[1]["data"]
    if "ready_essays" in data:
        return None
    return str(data["entity_ref"]["entity_id"] if "entity_ref" in data else data["entity_id"])


Placed = dict[str, tuple[frozenset[str], frozenset[str]]]


def placed_by_the_rule(fetches: list[list[tuple[str, dict[str, Any]]]]) -> Placed:
    """The placement rule (tests/support/consumer_scenarios.py), fetch by fetch."""
    named_by: dict[str, set[str]] = {}
    waiting: set[str] = set()
    placed: dict[str, set[str]] = {batch: set() for batch in BATCHES}
    for fetch in fetches:
        rosters = [e[1]["data"]["batch_id"] for e in fetch if essay_of(e) is None]
        for batch in rosters:
            for essay in BATCHES[batch]:
                named_by.setdefault(essay, set()).add(batch)
        for essay in filter(None, map(essay_of, fetch)):
            for batch in named_by.get(essay, set()):
                placed[batch].add(essay)
            if essay not in named_by:
                waiting.add(essay)
        for batch in rosters:
            for essay in set(BATCHES[batch]) & waiting:
                placed[batch].add(essay)
        waiting -= {essay for batch in rosters for essay in BATCHES[batch]}
    return {
        batch: (
            frozenset(e for e in essays if RESULTS[e]),
            frozenset(e for e in essays if not RESULTS[e]),
        )
        for batch, essays in placed.items()
    }


async def stored_results(harness: PipelineHarness) -> Placed:
    found: Placed = {}
    for batch in BATCHES:
        stored = await facts(harness, batch)
        found[batch] = (
            frozenset(stored.succeeded.get("spellcheck", set())),
            frozenset(stored.failed.get("spellcheck", set())),
        )
    return found


@settings(max_examples=examples(60), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_any_order_and_any_split_into_fetches_places_by_the_rule(data: st.DataObject) -> None:
    events = data.draw(st.permutations(world()))
    cuts = data.draw(st.lists(st.integers(1, len(events) - 1), unique=True, max_size=4))
    bounds = [0, *sorted(cuts), len(events)]
    fetches = [list(events[a:b]) for a, b in itertools.pairwise(bounds)]

    async def run() -> Placed:
        harness = memory_harness()
        for fetch in fetches:
            await harness.fetch(*fetch)
        assert harness.dead_letters.sent == []
        return await stored_results(harness)

    stored = asyncio.run(run())
    assert stored == placed_by_the_rule(fetches)
    # Whatever the order, a result whose essay one roster names ends in that batch.
    assert "e1" in stored["b1"][0]
    assert "e3" in stored["b2"][1]
    assert "e4" in stored["b3"][0]


class YieldingPlacement:
    """The memory lot letting other tasks run around every call, as a network store does, so
    that replicas' placement steps really interleave."""

    def __init__(self, inner: InMemoryEssayPlacement, seed: int) -> None:
        self._inner = inner
        self._random = random.Random(seed)

    async def _pause(self) -> None:
        # A varying number of turns, so that calls of different replicas overlap differently.
        for _ in range(self._random.randint(0, 3)):
            await asyncio.sleep(0)

    async def index_rosters(self, rosters: Mapping[str, Collection[str]]) -> None:
        await self._pause()
        await self._inner.index_rosters(rosters)
        await self._pause()

    async def batches_of(self, essay_ids: Collection[str]) -> dict[str, frozenset[str]]:
        await self._pause()
        found = await self._inner.batches_of(essay_ids)
        await self._pause()
        return found

    async def park(self, results: Sequence[ParkedResult]) -> list[ParkedResult]:
        await self._pause()
        refused = await self._inner.park(results)
        await self._pause()
        return refused

    async def parked_for(self, essay_ids: Collection[str]) -> dict[str, list[ParkedResult]]:
        await self._pause()
        found = await self._inner.parked_for(essay_ids)
        await self._pause()
        return found

    async def unpark(self, results: Sequence[ParkedResult]) -> None:
        await self._pause()
        await self._inner.unpark(results)
        await self._pause()

    async def health(self) -> dict[str, ComponentHealth]:
        return await self._inner.health()


@settings(max_examples=examples(60), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_replicas_racing_on_other_partitions_lose_no_placement(data: st.DataObject) -> None:
    events = data.draw(st.permutations(world()))
    owner = data.draw(st.lists(st.integers(0, 2), min_size=len(events), max_size=len(events)))
    seed = data.draw(st.integers(0, 2**32))

    async def run() -> Placed:
        shared = memory_harness()
        placement = YieldingPlacement(shared.placement, seed)  # type: ignore[arg-type]
        replicas = [
            PipelineHarness(
                shared.repository,
                placement,
                shared.metrics,
                shared.registry,
                dead_letters=shared.dead_letters,
            )
            for _ in range(3)
        ]

        async def partition(replica: PipelineHarness, mine: list[Any]) -> None:
            for event in mine:
                await replica.fetch(event)

        await asyncio.gather(
            *(
                partition(replica, [e for e, o in zip(events, owner, strict=True) if o == r])
                for r, replica in enumerate(replicas)
            )
        )
        assert shared.dead_letters.sent == []
        return await stored_results(shared)

    stored = asyncio.run(run())
    # A result is placed only into batches whose rosters name its essay, and a roster and a
    # result racing each other always meet: it ends in at least one of them (in every one when
    # they came in order; which of two racing rosters gets it is the race's to decide).
    for essay, succeeded in RESULTS.items():
        named_by = {batch for batch, essays in BATCHES.items() if essay in essays}
        holding = {batch for batch in BATCHES if essay in stored[batch][0 if succeeded else 1]}
        assert holding <= named_by, essay
        assert bool(holding) == bool(named_by), essay
    assert all(not stored[batch][1] & {"e1", "e2", "e4"} for batch in BATCHES)


# --- The time rule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "ahead", "report_success", "complete"), scenario.TIME_RULE_CASES
)
async def test_an_outcome_stamped_ahead_counts_at_its_arrival_against_a_later_report(
    status: str, ahead: timedelta, report_success: bool, complete: bool
) -> None:
    harness = memory_harness(clock=lambda: scenario.RECEIVED)
    ended = await scenario.outcome_then_report(
        harness.repository, harness, status=status, ahead=ahead, report_success=report_success
    )
    assert ended is complete


# --- Last event age and the fetch's log line --------------------------------------------------


async def test_last_event_age_is_the_age_of_the_newest_stored_event() -> None:
    harness = memory_harness(clock=lambda: EVENT_TIME + timedelta(seconds=90))
    newer = (EVENT_TIME + timedelta(seconds=60)).isoformat()

    await harness.handle(
        [
            msg(READY, 0, ev.ready("b1", ["e1"])),
            msg(READY, 1, ev.ready("b2", ["e1"], timestamp=newer)),
        ]
    )

    assert harness.sample("bcs_last_applied_event_age_seconds") == pytest.approx(30.0)


async def test_last_event_age_is_never_negative_for_an_event_stamped_ahead() -> None:
    harness = memory_harness(clock=lambda: EVENT_TIME - timedelta(seconds=5))

    await harness.handle([msg(READY, 0, ev.ready("b1", ["e1"]))])

    assert harness.sample("bcs_last_applied_event_age_seconds") == 0.0


async def test_last_event_age_ignores_a_redelivered_duplicate() -> None:
    harness = memory_harness(clock=lambda: EVENT_TIME + timedelta(seconds=90))
    newer = (EVENT_TIME + timedelta(seconds=60)).isoformat()
    old = ev.ready("b1", ["e1"])
    await harness.handle([msg(READY, 0, old)])
    await harness.handle([msg(READY, 1, ev.ready("b2", ["e1"], timestamp=newer))])

    await harness.handle([msg(READY, 2, old)])

    assert harness.sample("bcs_last_applied_event_age_seconds") == pytest.approx(30.0)


async def test_last_event_age_is_left_alone_by_a_fetch_of_bad_messages() -> None:
    harness = memory_harness(clock=lambda: EVENT_TIME + timedelta(seconds=90))
    await harness.handle([msg(READY, 0, ev.ready("b1", ["e1"]))])

    await harness.handle([Message(READY, 0, 1, b"garbage")])

    assert harness.sample("bcs_last_applied_event_age_seconds") == pytest.approx(90.0)


async def test_a_fetch_writes_one_info_summary_with_its_outcomes_partitions_and_ids() -> None:
    harness = memory_harness()
    first = ev.spellcheck("b1", "e1", correlation_id="corr-a")
    event = ev.spellcheck("b1", "e2", correlation_id="corr-b")
    bad = ev.spellcheck("b1", "e3", correlation_id="corr-bad")
    del bad["data"]["status"]
    ready = ev.ready("b1", ["e1"], correlation_id="corr-c")
    parked = ev.spellcheck(None, "e9", correlation_id="corr-d")
    await harness.handle([msg(SPELLCHECK, 0, first)])

    with capture_logs() as logs:
        await harness.handle(
            [
                msg(SPELLCHECK, 4, first),
                msg(SPELLCHECK, 5, event),
                msg(SPELLCHECK, 6, bad),
                msg(SPELLCHECK, 7, parked),
                msg(READY, 9, ready, partition=2),
            ]
        )

    [summary] = [line for line in logs if line["log_level"] == "info"]
    assert summary["event"] == "event_batch_stored"
    assert summary["messages"] == 5
    assert (summary["applied"], summary["duplicate"], summary["parked"]) == (2, 1, 1)
    assert summary["dead_lettered"] == 1
    assert summary["partitions"] == {f"{SPELLCHECK}/0": [4, 7], f"{READY}/2": [9, 9]}
    assert summary["correlation_ids"] == ["corr-a", "corr-b", "corr-d", "corr-c"]
    assert summary["event_ids"] == [
        first["event_id"],
        event["event_id"],
        parked["event_id"],
        ready["event_id"],
    ]
    [dead] = [line for line in logs if line["event"] == "event_dead_lettered"]
    assert (dead["offset"], dead["reason"]) == (6, "schema_validation_failed")


async def test_the_summary_of_a_large_fetch_names_a_bounded_number_of_ids() -> None:
    harness = memory_harness()
    count = 45
    messages = [
        msg(SPELLCHECK, i, ev.spellcheck("b1", f"e{i}", correlation_id=f"c{i}"))
        for i in range(count)
    ]

    with capture_logs() as logs:
        await harness.handle(messages)

    [summary] = [line for line in logs if line["event"] == "event_batch_stored"]
    assert summary["messages"] == count
    assert summary["correlation_ids"] == [f"c{i}" for i in range(20)]
    assert len(summary["event_ids"]) == 20


# --- Sharing the event loop ---------------------------------------------------------------------


async def test_a_large_fetch_is_translated_a_few_hundred_messages_a_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The HTTP API shares the event loop: a fetch translated in one piece (about 30 ms for
    # 2,000 messages) would hold every /define and health check behind it.
    harness = memory_harness()
    records = [msg(SPELLCHECK, n, ev.spellcheck("b1", f"e{n}")) for n in range(450)]
    async with loop_turns() as turns:
        monkeypatch.setattr(pipeline_module, "translate", turns.counting(pipeline_module.translate))
        await harness.handle(records)

    assert len(turns.calls_at) == 450
    assert turns.most_calls_in_one_turn() == pipeline_module.TRANSLATE_TURN
    assert (await facts(harness, "b1")).succeeded == {"spellcheck": {f"e{n}" for n in range(450)}}
