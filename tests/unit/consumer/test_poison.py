"""The failure rule: an outage retries the whole fetch; anything else is pinned on the message
that causes it, which is dead-lettered after a bounded number of tries while the rest is stored."""

from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from batch_conductor_service.consumer import fetched_batch
from batch_conductor_service.consumer.batch_processor import EventBatchProcessor
from batch_conductor_service.consumer.fetched_batch import FetchedBatch
from batch_conductor_service.consumer.health import ConsumerHealth, ConsumerPhase
from batch_conductor_service.consumer.offsets import PartitionKey
from batch_conductor_service.domain.batch_state import ApplyResult, BatchStateChange
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.health import HealthState
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from batch_conductor_service.stores.placement.memory import InMemoryEssayPlacement
from common_core.topics import Topic
from tests.support import event_factory as ev
from tests.support.recording_dlq import RecordingDlqProducer
from tests.unit.consumer.test_batch_processor import Message, msg

READY = Topic.BATCH_ESSAYS_READY.value
SPELLCHECK = Topic.SPELLCHECK_COMPLETED.value


class PickyRepository(InMemoryBatchStateRepository):
    """Fails any write that holds a change for one of `poison` batches, `failures` times each
    (forever by default), with an error that is not an outage; counts the writes it is given."""

    def __init__(self, poison: set[str], failures: int = 1_000, error: type = ValueError):
        super().__init__(ttl_seconds=3600)
        self.poison = poison
        self.left = dict.fromkeys(poison, failures)
        self.error = error
        self.calls: list[int] = []

    async def apply_many(self, changes: Sequence[BatchStateChange]) -> list[ApplyResult]:
        self.calls.append(len(changes))
        for change in changes:
            if change.batch_id in self.poison and self.left[change.batch_id] > 0:
                self.left[change.batch_id] -= 1
                raise self.error(f"cannot store {change.batch_id}")
        return await super().apply_many(changes)


def processor(
    repository: InMemoryBatchStateRepository, dlq: RecordingDlqProducer, registry: Any = None
) -> EventBatchProcessor:
    return EventBatchProcessor(
        repository,
        dlq,
        BcsMetrics(registry or CollectorRegistry()),
        placement=InMemoryEssayPlacement(3600),
        max_attempts=3,
        retry_delay_seconds=0.0,
    )


def spellchecks(batches: list[str]) -> list[Message]:
    return [msg(SPELLCHECK, i, ev.spellcheck(b, f"e{i}")) for i, b in enumerate(batches)]


async def test_a_poison_message_is_isolated_the_others_are_stored_and_all_are_committed() -> None:
    repository = PickyRepository({"bad"})
    dlq = RecordingDlqProducer()
    batches = ["b0", "b1", "bad", "b3", "b4", "b5", "b6"]

    offsets = await processor(repository, dlq).process(FetchedBatch.of(spellchecks(batches)))

    assert offsets == {PartitionKey(SPELLCHECK, 0): len(batches)}
    for i, batch in enumerate(batches):
        succeeded = (await repository.get_snapshot(batch)).succeeded
        assert succeeded == ({} if batch == "bad" else {"spellcheck": frozenset({f"e{i}"})})
    [record] = dlq.sent
    assert (record.reason, record.offset) == ("processing_failed", 2)
    assert "ValueError: cannot store bad" in record.error
    assert "3 times" in record.error


async def test_isolation_splits_in_halves_rather_than_writing_each_message_alone() -> None:
    repository = PickyRepository({"bad"})
    batches = [f"b{i}" for i in range(63)] + ["bad"]

    await processor(repository, RecordingDlqProducer()).process(
        FetchedBatch.of(spellchecks(batches))
    )

    # One failed write of 64, then one failing and one good half per level (6 levels), then
    # two more tries of the poison message alone: 15 writes, where one by one would take 66.
    assert len(repository.calls) == 1 + 2 * 6 + 2


async def test_several_poison_messages_are_each_dead_lettered() -> None:
    repository = PickyRepository({"bad1", "bad2"}, error=KeyError)
    dlq = RecordingDlqProducer()

    await processor(repository, dlq).process(
        FetchedBatch.of(spellchecks(["bad1", "b1", "b2", "bad2", "b4"]))
    )

    assert sorted(r.offset for r in dlq.sent) == [0, 3]
    assert {r.reason for r in dlq.sent} == {"processing_failed"}
    assert (await repository.get_snapshot("b4")).succeeded


async def test_a_failure_that_passes_within_the_bounded_tries_dead_letters_nothing() -> None:
    repository = PickyRepository({"flaky"}, failures=2)
    dlq = RecordingDlqProducer()

    await processor(repository, dlq).process(FetchedBatch.of(spellchecks(["b0", "flaky"])))

    assert dlq.sent == []
    assert (await repository.get_snapshot("flaky")).succeeded == {"spellcheck": frozenset({"e1"})}


async def test_an_outage_during_isolation_still_propagates_and_dead_letters_nothing() -> None:
    repository = PickyRepository({"bad"}, error=ValueError)
    dlq = RecordingDlqProducer()
    calls = 0
    original = repository.apply_many

    async def failing_later(changes: Sequence[BatchStateChange]) -> list[ApplyResult]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise StateStoreUnavailableError("memory", "down")
        return await original(changes)

    repository.apply_many = failing_later  # type: ignore[method-assign]

    with pytest.raises(StateStoreUnavailableError):
        await processor(repository, dlq).process(FetchedBatch.of(spellchecks(["b0", "bad"])))
    assert dlq.sent == []


async def test_a_translation_that_raises_an_unforeseen_error_is_dead_lettered_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(topic: str, raw: bytes | None) -> Any:
        if raw is not None and b"bad" in raw:
            raise OverflowError("date value out of range")
        return real(topic, raw)

    real = fetched_batch.translate
    monkeypatch.setattr(fetched_batch, "translate", broken)
    repository = InMemoryBatchStateRepository(ttl_seconds=3600)
    dlq = RecordingDlqProducer()

    offsets = await processor(repository, dlq).process(
        FetchedBatch.of(spellchecks(["b0", "bad", "b2"]))
    )

    assert offsets == {PartitionKey(SPELLCHECK, 0): 3}
    [record] = dlq.sent
    assert record.reason == "processing_failed"
    assert "OverflowError" in record.error
    assert (await repository.get_snapshot("b2")).succeeded


async def test_one_by_one_dead_letters_a_message_whose_handling_raises_even_alone() -> None:
    repository = InMemoryBatchStateRepository(ttl_seconds=3600)
    dlq = RecordingDlqProducer()
    handler = processor(repository, dlq)
    original = handler.process

    async def buggy(batch: FetchedBatch) -> dict[PartitionKey, int]:
        if any(m.offset == 1 for m in batch.messages):
            raise RuntimeError("a bug")
        return await original(batch)

    handler.process = buggy  # type: ignore[method-assign]

    offsets = await handler.process_one_by_one(spellchecks(["b0", "b1", "b2"]))

    assert offsets == {PartitionKey(SPELLCHECK, 0): 3}
    [record] = dlq.sent
    assert (record.offset, record.reason) == (1, "processing_failed")
    assert "RuntimeError: a bug" in record.error
    assert (await repository.get_snapshot("b2")).succeeded


async def test_a_consumer_without_progress_for_longer_than_the_stall_limit_is_unhealthy() -> None:
    now = [100.0]
    health = ConsumerHealth(enabled=True, stall_seconds=60.0, clock=lambda: now[0])
    health.running(1)
    health.failing(ConsumerPhase.RETRYING, "StateStoreUnavailableError('redis')")
    now[0] += 59.0
    health.failing(ConsumerPhase.RETRYING, "StateStoreUnavailableError('redis')")

    assert (await health.health())["kafka_consumer"].state is HealthState.DEGRADED

    now[0] += 2.0
    report = (await health.health())["kafka_consumer"]
    assert report.state is HealthState.UNHEALTHY
    assert report.detail["stalled_seconds"] == 61.0

    health.running(1)
    assert (await health.health())["kafka_consumer"].state is HealthState.OK
