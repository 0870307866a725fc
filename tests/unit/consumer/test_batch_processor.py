import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from batch_conductor_service.consumer import batch_processor
from batch_conductor_service.consumer.batch_processor import EventBatchProcessor
from batch_conductor_service.consumer.fetched_batch import TRACED_IDS, FetchedBatch, offset_ranges
from batch_conductor_service.consumer.offsets import PartitionKey, first_offsets, next_offsets
from batch_conductor_service.domain.batch_state import ApplyResult, BatchStateChange
from batch_conductor_service.errors import DeadLetterUnavailableError, StateStoreUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
)
from batch_conductor_service.stores.placement.memory import InMemoryEssayPlacement
from common_core.topics import Topic
from tests.support import event_factory as ev
from tests.support.consumed_message import Message
from tests.support.recording_dlq import RecordingDlqProducer

READY = Topic.BATCH_ESSAYS_READY.value
SPELLCHECK = Topic.SPELLCHECK_COMPLETED.value
# The event_factory default timestamp.
EVENT_TIME = datetime(2025, 6, 21, 12, 0, 0, 123456, tzinfo=UTC)


class StoreDown(InMemoryBatchStateRepository):
    def __init__(self) -> None:
        super().__init__(ttl_seconds=3600)

    async def apply_many(self, changes: Sequence[BatchStateChange]) -> list[ApplyResult]:
        raise StateStoreUnavailableError("memory", "switched off by the test")


class Harness:
    def __init__(
        self,
        repository: InMemoryBatchStateRepository | None = None,
        dead_letters: RecordingDlqProducer | None = None,
        now: datetime = EVENT_TIME,
    ) -> None:
        self.registry = CollectorRegistry()
        self.repository = repository or InMemoryBatchStateRepository(ttl_seconds=3600)
        self.dead_letters = dead_letters or RecordingDlqProducer()
        self.placement = InMemoryEssayPlacement(ttl_seconds=3600)
        self.processor = EventBatchProcessor(
            self.repository,
            self.dead_letters,
            BcsMetrics(self.registry),
            clock=lambda: now,
            placement=self.placement,
        )

    async def process(self, messages: Sequence[Message]) -> dict[PartitionKey, int]:
        return await self.processor.process(FetchedBatch.of(messages))

    def processed(self, topic: str, outcome: str) -> float:
        value = self.registry.get_sample_value(
            "bcs_events_processed_total", {"event_type": topic, "outcome": outcome}
        )
        return value or 0.0

    def dlq_count(self, topic: str, reason: str) -> float:
        value = self.registry.get_sample_value(
            "bcs_dlq_records_total", {"topic": topic, "reason": reason}
        )
        return value or 0.0

    def sample(self, name: str) -> float | None:
        return self.registry.get_sample_value(name)


def msg(topic: str, offset: int, document: dict[str, Any], partition: int = 0) -> Message:
    return Message(topic, partition, offset, ev.encode(document))


async def test_good_events_are_stored_in_the_repository_and_counted_as_applied() -> None:
    harness = Harness()

    await harness.process(
        [
            msg(READY, 0, ev.ready("b1", ["e1", "e2"])),
            msg(SPELLCHECK, 0, ev.spellcheck("b1", "e1")),
            msg(SPELLCHECK, 1, ev.spellcheck("b1", "e2", "spellcheck_failed")),
        ]
    )

    snapshot = await harness.repository.get_snapshot("b1")
    assert snapshot.roster == frozenset({"e1", "e2"})
    assert snapshot.succeeded == {"spellcheck": frozenset({"e1"})}
    assert snapshot.failed == {"spellcheck": frozenset({"e2"})}
    assert harness.processed(READY, "applied") == 1
    assert harness.processed(SPELLCHECK, "applied") == 2
    assert harness.processed(SPELLCHECK, "duplicate") == 0
    assert harness.dead_letters.sent == []
    assert harness.sample("bcs_consumer_batch_duration_seconds_count") == 1


async def test_a_redelivered_event_is_counted_as_duplicate_and_not_applied_twice() -> None:
    harness = Harness()
    event = ev.spellcheck("b1", "e1", event_id=str(uuid.uuid4()))

    await harness.process([msg(SPELLCHECK, 0, event)])
    await harness.process([msg(SPELLCHECK, 0, event), msg(SPELLCHECK, 1, event)])

    assert harness.processed(SPELLCHECK, "applied") == 1
    assert harness.processed(SPELLCHECK, "duplicate") == 2
    assert harness.dead_letters.sent == []
    assert (await harness.repository.get_snapshot("b1")).succeeded == {
        "spellcheck": frozenset({"e1"})
    }


async def test_a_message_that_is_not_json_is_dead_lettered_with_its_context() -> None:
    harness = Harness()

    await harness.process([Message(READY, 3, 41, b'{"not json": ')])

    [record] = harness.dead_letters.sent
    assert record.original_topic == READY
    assert record.partition == 3
    assert record.offset == 41
    assert record.reason == "invalid_json"
    assert record.payload == b'{"not json": '
    assert record.error
    assert harness.dlq_count(READY, "invalid_json") == 1
    assert harness.processed(READY, "dead_lettered") == 1
    assert harness.processed(READY, "applied") == 0


async def test_a_message_without_a_value_is_dead_lettered_as_invalid_json() -> None:
    harness = Harness()

    await harness.process([Message(READY, 0, 7, None)])

    [record] = harness.dead_letters.sent
    assert (record.reason, record.payload, record.offset) == ("invalid_json", b"", 7)


async def test_a_message_of_the_wrong_shape_is_dead_lettered_with_its_correlation_id() -> None:
    harness = Harness()
    document = ev.ready("b1", ["e1"], correlation_id="corr-1")
    del document["data"]["batch_id"]

    await harness.process([msg(READY, 5, document, partition=1)])

    [record] = harness.dead_letters.sent
    assert record.reason == "schema_validation_failed"
    assert "batch_id" in record.error
    assert record.correlation_id == "corr-1"
    assert (record.original_topic, record.partition, record.offset) == (READY, 1, 5)
    assert record.payload == ev.encode(document)
    assert harness.dlq_count(READY, "schema_validation_failed") == 1


async def test_a_spellcheck_result_naming_no_batch_is_parked_not_dead_lettered() -> None:
    harness = Harness()
    document = ev.spellcheck(None, "e1", correlation_id="corr-2")

    await harness.process([msg(SPELLCHECK, 0, document)])

    assert harness.dead_letters.sent == []
    assert harness.processed(SPELLCHECK, "parked") == 1
    assert harness.processed(SPELLCHECK, "dead_lettered") == 0


async def test_good_and_bad_messages_of_one_batch_are_each_handled() -> None:
    harness = Harness()

    await harness.process(
        [
            msg(READY, 0, ev.ready("b1", ["e1"])),
            Message(READY, 0, 1, b"garbage"),
            msg(READY, 2, ev.ready("b2", ["e9"])),
        ]
    )

    assert harness.processed(READY, "applied") == 2
    assert harness.processed(READY, "dead_lettered") == 1
    assert [r.offset for r in harness.dead_letters.sent] == [1]
    assert (await harness.repository.get_snapshot("b2")).roster == frozenset({"e9"})


async def test_offsets_to_commit_are_one_past_the_last_message_of_each_partition() -> None:
    harness = Harness()

    offsets = await harness.process(
        [
            msg(READY, 10, ev.ready("b1", ["e1"])),
            msg(SPELLCHECK, 4, ev.spellcheck("b1", "e1"), partition=2),
            msg(READY, 11, ev.ready("b1", ["e2"])),
            # A dead-lettered message is done with too: its offset is committed.
            Message(READY, 0, 12, b"garbage"),
            Message(SPELLCHECK, 1, 30, b"garbage"),
        ]
    )

    assert offsets == {
        PartitionKey(READY, 0): 13,
        PartitionKey(SPELLCHECK, 2): 5,
        PartitionKey(SPELLCHECK, 1): 31,
    }


async def test_an_empty_batch_commits_nothing_and_stores_nothing() -> None:
    harness = Harness(repository=StoreDown())

    assert await harness.process([]) == {}


async def test_a_store_failure_propagates_without_dead_lettering_or_counting() -> None:
    harness = Harness(repository=StoreDown())

    with pytest.raises(StateStoreUnavailableError):
        await harness.process(
            [msg(READY, 0, ev.ready("b1", ["e1"])), Message(READY, 0, 1, b"garbage")]
        )

    assert harness.dead_letters.sent == []
    assert harness.processed(READY, "applied") == 0
    assert harness.processed(READY, "dead_lettered") == 0
    assert harness.dlq_count(READY, "invalid_json") == 0


async def test_a_dead_letter_failure_propagates_after_the_good_events_are_stored() -> None:
    harness = Harness(dead_letters=RecordingDlqProducer(failing=True))

    with pytest.raises(DeadLetterUnavailableError):
        await harness.process(
            [msg(READY, 0, ev.ready("b1", ["e1"])), Message(READY, 0, 1, b"garbage")]
        )

    # Stored first, so the retry of this batch finds the good event a duplicate.
    assert (await harness.repository.get_snapshot("b1")).roster == frozenset({"e1"})
    assert harness.processed(READY, "dead_lettered") == 0
    assert harness.dlq_count(READY, "invalid_json") == 0


async def test_retried_messages_are_counted_per_topic() -> None:
    harness = Harness()

    harness.processor.count_retried(
        [Message(READY, 0, 0, b""), Message(READY, 0, 1, b""), Message(SPELLCHECK, 0, 0, b"")]
    )

    assert harness.processed(READY, "retried") == 2
    assert harness.processed(SPELLCHECK, "retried") == 1


async def test_last_event_age_is_the_age_of_the_newest_stored_event() -> None:
    harness = Harness(now=EVENT_TIME + timedelta(seconds=90))
    newer = (EVENT_TIME + timedelta(seconds=60)).isoformat()

    await harness.process(
        [
            msg(READY, 0, ev.ready("b1", ["e1"])),
            msg(READY, 1, ev.ready("b2", ["e1"], timestamp=newer)),
        ]
    )

    assert harness.sample("bcs_last_applied_event_age_seconds") == pytest.approx(30.0)


async def test_last_event_age_is_never_negative_when_the_event_comes_from_the_future() -> None:
    harness = Harness(now=EVENT_TIME - timedelta(seconds=5))

    await harness.process([msg(READY, 0, ev.ready("b1", ["e1"]))])

    assert harness.sample("bcs_last_applied_event_age_seconds") == 0.0


async def test_last_event_age_ignores_a_redelivered_duplicate() -> None:
    harness = Harness(now=EVENT_TIME + timedelta(seconds=90))
    newer = (EVENT_TIME + timedelta(seconds=60)).isoformat()
    old = ev.ready("b1", ["e1"])
    await harness.process([msg(READY, 0, old)])
    await harness.process([msg(READY, 1, ev.ready("b2", ["e1"], timestamp=newer))])

    await harness.process([msg(READY, 2, old)])

    assert harness.sample("bcs_last_applied_event_age_seconds") == pytest.approx(30.0)


async def test_last_event_age_is_left_alone_by_a_batch_of_bad_messages() -> None:
    harness = Harness(now=EVENT_TIME + timedelta(seconds=90))
    await harness.process([msg(READY, 0, ev.ready("b1", ["e1"]))])

    await harness.process([Message(READY, 0, 1, b"garbage")])

    assert harness.sample("bcs_last_applied_event_age_seconds") == pytest.approx(90.0)


def test_next_offsets_are_one_past_the_highest_offset_per_partition_in_any_order() -> None:
    messages = [
        Message(READY, 0, 7, None),
        Message(READY, 0, 5, None),
        Message(READY, 1, 0, None),
        Message(SPELLCHECK, 0, 2, None),
    ]

    assert next_offsets(messages) == {
        PartitionKey(READY, 0): 8,
        PartitionKey(READY, 1): 1,
        PartitionKey(SPELLCHECK, 0): 3,
    }


def test_first_offsets_are_the_lowest_offset_per_partition_in_any_order() -> None:
    messages = [
        Message(READY, 0, 7, None),
        Message(READY, 0, 5, None),
        Message(READY, 1, 0, None),
        Message(SPELLCHECK, 0, 2, None),
    ]

    assert first_offsets(messages) == {
        PartitionKey(READY, 0): 5,
        PartitionKey(READY, 1): 0,
        PartitionKey(SPELLCHECK, 0): 2,
    }


async def test_a_batch_writes_one_info_summary_and_a_debug_line_per_event() -> None:
    harness = Harness()
    first = ev.spellcheck("b1", "e1", correlation_id="corr-a")
    event = ev.spellcheck("b1", "e2", correlation_id="corr-b")
    bad = ev.spellcheck("b1", "e3", correlation_id="corr-bad")
    del bad["data"]["status"]
    ready = ev.ready("b1", ["e1"], correlation_id="corr-c")
    await harness.process([msg(SPELLCHECK, 0, first)])

    with capture_logs() as logs:
        await harness.process(
            [
                msg(SPELLCHECK, 4, first),
                msg(SPELLCHECK, 5, event),
                msg(SPELLCHECK, 6, bad),
                msg(READY, 9, ready, partition=2),
            ]
        )

    [summary] = [line for line in logs if line["log_level"] == "info"]
    assert summary["event"] == "event_batch_stored"
    assert (summary["applied"], summary["duplicate"], summary["dead_lettered"]) == (2, 1, 1)
    assert summary["messages"] == 4
    assert summary["partitions"] == {f"{SPELLCHECK}/0": [4, 6], f"{READY}/2": [9, 9]}
    assert summary["correlation_ids"] == ["corr-a", "corr-b", "corr-c", "corr-bad"]
    assert summary["event_ids"] == [first["event_id"], event["event_id"], ready["event_id"]]
    assert summary["ids_truncated"] is False
    stored = [line for line in logs if line["event"] == "event_stored"]
    assert {line["log_level"] for line in stored} == {"debug"}
    assert len(stored) == 3


async def test_each_per_event_line_carries_its_own_events_correlation_id() -> None:
    harness = Harness()
    documents = [
        ev.spellcheck("b1", "e1", correlation_id="corr-1"),
        ev.spellcheck("b1", "e2", correlation_id="corr-2"),
    ]

    with capture_logs(processors=[merge_contextvars]) as logs:
        await harness.process([msg(SPELLCHECK, i, d) for i, d in enumerate(documents)])

    stored = {line["event_id"]: line for line in logs if line["event"] == "event_stored"}
    for document in documents:
        assert stored[document["event_id"]]["correlation_id"] == document["correlation_id"]


def test_the_trace_of_a_large_batch_names_a_bounded_number_of_ids() -> None:
    count = TRACED_IDS + 5
    messages = [
        msg(SPELLCHECK, i, ev.spellcheck("b1", f"e{i}", correlation_id=f"c{i}"))
        for i in range(count)
    ]

    trace = FetchedBatch.of(messages).trace()

    assert trace["correlation_ids"] == [f"c{i}" for i in range(TRACED_IDS)]
    assert isinstance(trace["event_ids"], list)
    assert len(trace["event_ids"]) == TRACED_IDS
    assert trace["ids_truncated"] is True
    assert trace["messages"] == count


def test_offset_ranges_name_each_partition_with_its_first_and_last_offset() -> None:
    messages = [
        Message(READY, 0, 7, None),
        Message(READY, 0, 5, None),
        Message(SPELLCHECK, 3, 2, None),
    ]

    assert offset_ranges(messages) == {f"{READY}/0": [5, 7], f"{SPELLCHECK}/3": [2, 2]}


async def test_when_debug_is_not_logged_no_per_event_line_is_built_yet_every_event_is_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch_processor, "logs_at", lambda level: level != "debug")
    harness = Harness()
    with capture_logs() as logs:
        await harness.process(
            [msg(SPELLCHECK, i, ev.spellcheck("b1", f"e{i}")) for i in range(3)]
            + [msg(SPELLCHECK, 3, ev.spellcheck(None, "e9"))]
        )
    assert [line["event"] for line in logs] == ["event_batch_stored"]
    assert harness.processed(SPELLCHECK, "applied") == 3
    assert harness.processed(SPELLCHECK, "ignored") + harness.processed(SPELLCHECK, "parked") == 1
