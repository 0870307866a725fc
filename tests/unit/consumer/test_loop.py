"""The consumer loop (consumer/loop.py) against a fake AIOKafkaConsumer: what it commits and
when, how it waits out store failures (exponential backoff) and survives Kafka failures, and how
it stops. No network, no sleeps: every wait is for a state the fake reaches."""

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import tenacity
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaConnectionError, RequestTimedOutError
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from batch_conductor_service.consumer.health import ConsumerHealth, ConsumerPhase
from batch_conductor_service.consumer.loop import EventConsumer
from batch_conductor_service.consumer.pipeline import EventPipeline
from batch_conductor_service.domain.batch_state import ApplyResult, BatchChange
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.memory import (
    InMemoryBatchStateRepository,
    InMemoryEssayPlacement,
)
from common_core.topics import Topic
from tests.support import event_factory as ev
from tests.support.recording_dlq import RecordingDlqProducer

READY = TopicPartition(Topic.BATCH_ESSAYS_READY.value, 0)
SPELLCHECK = TopicPartition(Topic.SPELLCHECK_COMPLETED.value, 1)
# Turns a hang (a broken fake or consumer) into a failure; no assertion depends on timing.
HANG_GUARD_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class FakeBroker:
    """The partitions' logs and the group's committed offsets, shared by successive clients."""

    def __init__(self, *partitions: TopicPartition) -> None:
        self.logs: dict[TopicPartition, list[Record]] = {tp: [] for tp in partitions}
        self.committed: dict[TopicPartition, int] = {}
        self.commits: list[dict[TopicPartition, int]] = []
        self.clients: list[FakeKafkaConsumer] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def produce(self, tp: TopicPartition, document: dict[str, Any]) -> int:
        log = self.logs[tp]
        log.append(Record(tp.topic, tp.partition, len(log), ev.encode(document)))
        return len(log) - 1

    @property
    def topics(self) -> list[str]:
        return sorted({tp.topic for tp in self.logs})

    def client(self) -> "FakeKafkaConsumer":
        client = FakeKafkaConsumer(self)
        self.clients.append(client)
        return client

    async def until(self, condition: Callable[[], bool]) -> None:
        """Returns once `condition` holds; checked whenever a client, the health or the store
        is called."""
        if condition():
            return
        reached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((condition, reached))
        async with asyncio.timeout(HANG_GUARD_SECONDS):
            await reached

    def notify(self) -> None:
        for condition, reached in list(self._waiters):
            if not reached.done() and condition():
                reached.set_result(None)


class FakeKafkaConsumer:
    """The AIOKafkaConsumer calls EventConsumer makes, on a client built without topics;
    `fail_next` makes one call raise."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.subscribed: frozenset[str] | None = None
        self.listener: ConsumerRebalanceListener | None = None
        self.started = False
        self.closed = False
        self.assigned: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}
        self.failures: dict[str, BaseException] = {}
        self.revoke_on_position: set[TopicPartition] = set()
        # A frozen broker: no fetch answers, and a metadata request fails.
        self.silent = False
        self.probes = 0

    def fail_next(self, method: str, error: BaseException) -> None:
        self.failures[method] = error

    def _called(self, method: str) -> None:
        self.broker.notify()
        if method in self.failures:
            raise self.failures.pop(method)

    def subscribe(
        self, topics: Sequence[str], listener: ConsumerRebalanceListener | None = None
    ) -> None:
        # Subscribed once, before start(), to the topics EventConsumer was given.
        assert not self.started
        assert self.subscribed is None
        self.subscribed = frozenset(topics)
        self.listener = listener

    async def start(self) -> None:
        assert self.subscribed is not None
        self._called("start")
        self.started = True
        self.assigned = {tp for tp in self.broker.logs if tp.topic in self.subscribed}
        self.positions = {tp: self.broker.committed.get(tp, 0) for tp in self.assigned}

    async def stop(self) -> None:
        self.closed = True
        self.broker.notify()

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self._called("getmany")
        fetched: dict[TopicPartition, list[Record]] = {}
        for tp in sorted(self.assigned):
            records = self.broker.logs[tp][self.positions[tp] :][:max_records]
            if records:
                fetched[tp] = records
                self.positions[tp] = records[-1].offset + 1
        if not fetched:
            # The real client waits up to timeout_ms here; yielding keeps the loop fair.
            await asyncio.sleep(0)
        return fetched

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        assert tp in self.assigned, "Partition is not assigned"
        return None if self.silent else int(time.time() * 1000)

    async def topics(self) -> set[str]:
        self.probes += 1
        self._called("topics")
        if self.silent:
            raise KafkaConnectionError("no answer")
        return set(self.subscribed or ())

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.broker.logs[tp])

    async def position(self, tp: TopicPartition) -> int:
        self._called("position")
        if tp in self.revoke_on_position:
            # A rebalance took the partition between assignment() and position().
            self.revoke_on_position.discard(tp)
            await self.revoke({tp})
        if tp not in self.assigned:
            raise IllegalStateError(f"No current assignment for partition {tp}")
        return self.positions[tp]

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self._called("commit")
        self.broker.committed.update(offsets)
        self.broker.commits.append(dict(offsets))
        self.broker.notify()

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self.assigned:
            raise IllegalStateError(f"No current assignment for partition {tp}")
        self.positions[tp] = offset

    async def revoke(self, partitions: set[TopicPartition]) -> None:
        assert self.listener is not None
        await self.listener.on_partitions_revoked(partitions)
        self.assigned -= partitions


class ObservedHealth(ConsumerHealth):
    """Lets FakeBroker.until see health changes made when no client is being called."""

    def __init__(self, broker: FakeBroker, silence_seconds: float) -> None:
        super().__init__(enabled=True, silence_seconds=silence_seconds)
        self._broker = broker

    def running(self, assigned_partitions: int) -> None:
        super().running(assigned_partitions)
        self._broker.notify()

    def failing(self, phase: ConsumerPhase, error: str) -> None:
        super().failing(phase, error)
        self._broker.notify()

    def stopped(self) -> None:
        super().stopped()
        self._broker.notify()


class GatedRepository(InMemoryBatchStateRepository):
    """Holds every write until the test opens the gate; can be switched off, for good or for
    the next `fail_next` writes."""

    def __init__(self, broker: FakeBroker) -> None:
        super().__init__(ttl_seconds=3600)
        self._broker = broker
        self.gate = asyncio.Event()
        self.gate.set()
        self.writing = asyncio.Event()
        self.down = False
        self.fail_next = 0
        self.failed_calls = 0
        self.applied_event_ids: list[str] = []

    async def apply(self, changes: Sequence[BatchChange]) -> list[ApplyResult]:
        self.writing.set()
        await self.gate.wait()
        if self.down or self.fail_next:
            self.fail_next = max(0, self.fail_next - 1)
            self.failed_calls += 1
            self._broker.notify()
            raise StateStoreUnavailableError("memory", "switched off by the test", 0.0)
        results = await super().apply(changes)
        self.applied_event_ids += [str(change.event_id) for change in changes]
        self._broker.notify()
        return results


class Harness:
    def __init__(
        self,
        backoff_initial_seconds: float = 0.0,
        backoff_max_seconds: float = 0.0,
        silence_seconds: float = 15.0,
    ):
        self.broker = FakeBroker(READY, SPELLCHECK)
        self.registry = CollectorRegistry()
        self.repository = GatedRepository(self.broker)
        self.health = ObservedHealth(self.broker, silence_seconds)
        self.phases_at_connect: list[ConsumerPhase] = []
        self.dead_letters = RecordingDlqProducer()
        metrics = BcsMetrics(self.registry)
        self.pipeline = EventPipeline(
            self.repository,
            InMemoryEssayPlacement(3600, 3600, 1000, metrics),
            self.dead_letters,
            metrics,
            max_records=100,
        )
        self.consumer = EventConsumer(
            self._connect,
            self.broker.topics,
            self.pipeline,
            self.health,
            metrics,
            backoff_initial_seconds=backoff_initial_seconds,
            backoff_max_seconds=backoff_max_seconds,
            silence_seconds=silence_seconds,
        )

    def _connect(self) -> FakeKafkaConsumer:
        self.phases_at_connect.append(self.health.phase)
        return self.broker.client()

    async def started(self) -> FakeKafkaConsumer:
        self.consumer.start()
        await self.broker.until(lambda: bool(self.broker.clients) and self.client.started)
        return self.client

    @property
    def client(self) -> FakeKafkaConsumer:
        return self.broker.clients[-1]

    async def stored(self, *event_ids: str) -> None:
        await self.broker.until(lambda: set(event_ids) <= set(self.repository.applied_event_ids))

    async def committed(self, offsets: dict[TopicPartition, int]) -> None:
        await self.broker.until(
            lambda: all(self.broker.committed.get(tp) == o for tp, o in offsets.items())
        )

    def lag(self, tp: TopicPartition) -> float | None:
        return self.registry.get_sample_value(
            "bcs_consumer_lag_messages", {"topic": tp.topic, "partition": str(tp.partition)}
        )

    def errors(self, kind: str) -> float:
        return self.registry.get_sample_value("bcs_consumer_errors_total", {"kind": kind}) or 0


def spellcheck(essay: str) -> dict[str, Any]:
    return ev.spellcheck("b1", essay)


async def test_a_fetch_is_committed_only_after_it_is_stored_one_past_the_last_offset() -> None:
    harness = Harness()
    harness.repository.gate.clear()
    documents = [ev.ready("b1", ["e1", "e2"]), spellcheck("e1"), spellcheck("e2")]
    harness.broker.produce(READY, documents[0])
    harness.broker.produce(SPELLCHECK, documents[1])
    harness.broker.produce(SPELLCHECK, documents[2])
    await harness.started()

    await harness.repository.writing.wait()
    assert harness.broker.commits == []
    harness.repository.gate.set()
    await harness.committed({READY: 1, SPELLCHECK: 2})

    assert harness.broker.commits[0] == {READY: 1, SPELLCHECK: 2}
    assert set(harness.repository.applied_event_ids) == {d["event_id"] for d in documents}
    await harness.consumer.stop(HANG_GUARD_SECONDS)


async def test_a_store_failure_seeks_back_commits_nothing_then_catches_up() -> None:
    harness = Harness()
    harness.repository.down = True
    first, second = spellcheck("e1"), spellcheck("e2")
    harness.broker.produce(SPELLCHECK, first)
    harness.broker.produce(SPELLCHECK, second)
    await harness.started()

    await harness.broker.until(lambda: harness.repository.failed_calls >= 2)
    assert harness.broker.commits == []
    assert harness.health.phase is ConsumerPhase.RETRYING
    assert "StateStoreUnavailableError" in (harness.health.error or "")
    assert harness.errors("infrastructure") >= 2
    harness.repository.down = False
    await harness.committed({SPELLCHECK: 2})

    # The retry fetched the same messages again from the first offset of the fetch.
    assert harness.repository.applied_event_ids == [first["event_id"], second["event_id"]]
    assert harness.broker.commits == [{SPELLCHECK: 2}]
    await harness.broker.until(lambda: harness.health.phase is ConsumerPhase.RUNNING)
    await harness.consumer.stop(HANG_GUARD_SECONDS)


async def test_each_retry_is_logged_with_what_failed() -> None:
    harness = Harness()
    harness.repository.down = True
    harness.broker.produce(SPELLCHECK, spellcheck("e1"))

    with capture_logs() as logs:
        await harness.started()
        await harness.broker.until(lambda: harness.repository.failed_calls >= 1)
        await harness.consumer.stop(HANG_GUARD_SECONDS)

    warning = next(line for line in logs if line["event"] == "consumer_will_retry")
    assert warning["phase"] == "retrying"
    assert "StateStoreUnavailableError" in warning["error"]


class RecordedWaits:
    """Stands in for the loop's sleep: keeps each wait and returns at once."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.broker.notify()
        await asyncio.sleep(0)


class HighestJitter:
    """Stands in for the random module in tenacity's waits: every draw is its upper bound."""

    @staticmethod
    def uniform(low: float, high: float) -> float:
        return high


async def test_the_wait_between_retries_doubles_to_its_cap_and_starts_again_after_a_success(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Exponential backoff with full jitter: the n-th wait is drawn up to initial * 2**(n-1),
    # capped; with every draw at its bound, the waits are those ceilings.
    monkeypatch.setattr(tenacity.wait, "random", HighestJitter)
    harness = Harness(backoff_initial_seconds=0.5, backoff_max_seconds=3.0)
    waits = RecordedWaits(harness.broker)
    harness.consumer._sleep = waits  # type: ignore[method-assign]
    harness.repository.fail_next = 5
    harness.broker.produce(SPELLCHECK, spellcheck("e1"))
    await harness.started()
    await harness.committed({SPELLCHECK: 1})

    assert waits.waits == [0.5, 1.0, 2.0, 3.0, 3.0]

    harness.repository.fail_next = 1
    harness.broker.produce(SPELLCHECK, spellcheck("e2"))
    await harness.committed({SPELLCHECK: 2})

    assert waits.waits[5:] == [0.5]
    await harness.consumer.stop(HANG_GUARD_SECONDS)


async def test_a_kafka_error_from_getmany_reconnects_and_health_shows_it() -> None:
    harness = Harness()
    first = await harness.started()
    first.fail_next("getmany", KafkaConnectionError("broker gone"))

    await harness.broker.until(lambda: len(harness.broker.clients) == 2)
    assert first.closed
    assert harness.phases_at_connect[-1] is ConsumerPhase.RECONNECTING
    assert harness.health.error == repr(KafkaConnectionError("broker gone"))
    assert harness.errors("kafka") == 1
    document = spellcheck("e1")
    harness.broker.produce(SPELLCHECK, document)
    await harness.committed({SPELLCHECK: 1})
    assert harness.health.phase is ConsumerPhase.RUNNING
    await harness.consumer.stop(HANG_GUARD_SECONDS)


async def test_a_kafka_error_from_commit_reconnects_and_the_fetch_is_redelivered() -> None:
    harness = Harness()
    client = await harness.started()
    client.fail_next("commit", RequestTimedOutError())
    document = spellcheck("e1")
    harness.broker.produce(SPELLCHECK, document)

    await harness.committed({SPELLCHECK: 1})

    assert len(harness.broker.clients) == 2
    assert client.closed
    # Stored once, then redelivered from the committed offset and absorbed as a duplicate.
    assert harness.repository.applied_event_ids == [document["event_id"]] * 2
    assert harness.phases_at_connect[-1] is ConsumerPhase.RECONNECTING
    await harness.consumer.stop(HANG_GUARD_SECONDS)


async def test_a_partition_revoked_before_position_does_not_stop_the_consumer() -> None:
    harness = Harness()
    harness.broker.produce(READY, ev.ready("b1", ["e1"]))
    harness.broker.produce(SPELLCHECK, spellcheck("e1"))
    client = await harness.started()
    await harness.committed({READY: 1, SPELLCHECK: 1})
    await harness.broker.until(lambda: harness.lag(READY) == 0 and harness.lag(SPELLCHECK) == 0)

    client.revoke_on_position.add(READY)
    await harness.broker.until(lambda: READY not in client.assigned)
    harness.broker.produce(SPELLCHECK, spellcheck("e2"))
    await harness.committed({SPELLCHECK: 2})

    assert harness.broker.clients == [client]
    assert harness.health.phase is ConsumerPhase.RUNNING
    assert harness.lag(SPELLCHECK) == 0
    await harness.consumer.stop(HANG_GUARD_SECONDS)


async def test_a_kafka_error_from_position_reconnects() -> None:
    harness = Harness()
    client = await harness.started()
    client.fail_next("position", KafkaConnectionError("coordinator gone"))

    await harness.broker.until(lambda: len(harness.broker.clients) == 2)

    assert client.closed
    assert harness.phases_at_connect[-1] is ConsumerPhase.RECONNECTING
    await harness.consumer.stop(HANG_GUARD_SECONDS)


async def test_revoked_partitions_lose_their_lag_series() -> None:
    harness = Harness()
    harness.broker.produce(READY, ev.ready("b1", ["e1"]))
    client = await harness.started()
    await harness.broker.until(lambda: harness.lag(READY) == 0 and harness.lag(SPELLCHECK) == 0)

    await client.revoke({READY})
    harness.broker.produce(SPELLCHECK, spellcheck("e1"))
    await harness.committed({SPELLCHECK: 1})

    assert harness.lag(READY) is None
    assert harness.lag(SPELLCHECK) == 0
    await harness.consumer.stop(HANG_GUARD_SECONDS)


async def test_stop_while_a_fetch_is_in_hand_commits_it_and_closes_the_client() -> None:
    harness = Harness()
    harness.repository.gate.clear()
    harness.broker.produce(SPELLCHECK, spellcheck("e1"))
    client = await harness.started()
    await harness.repository.writing.wait()

    stopping = asyncio.create_task(harness.consumer.stop(HANG_GUARD_SECONDS))
    harness.repository.gate.set()
    await stopping

    assert harness.broker.commits == [{SPELLCHECK: 1}]
    assert client.closed
    assert harness.health.phase is ConsumerPhase.STOPPED
    assert len(harness.broker.clients) == 1


async def test_a_consumer_task_killed_by_a_bug_shows_in_health_and_stop_does_not_raise() -> None:
    harness = Harness()
    client = await harness.started()
    client.fail_next("getmany", ZeroDivisionError("a bug"))

    await harness.broker.until(lambda: client.closed)
    await harness.broker.until(lambda: harness.health.phase is ConsumerPhase.DEAD)
    component = (await harness.health.health())["kafka_consumer"]
    assert component.as_json()["status"] == "unhealthy"
    assert component.detail["error"] == repr(ZeroDivisionError("a bug"))

    await harness.consumer.stop(HANG_GUARD_SECONDS)

    assert harness.health.phase is ConsumerPhase.STOPPED
    assert len(harness.broker.clients) == 1


async def test_stop_is_bounded_when_a_fetch_never_finishes_and_still_closes_the_client() -> None:
    harness = Harness()
    harness.repository.gate.clear()
    harness.broker.produce(SPELLCHECK, spellcheck("e1"))
    client = await harness.started()
    await harness.repository.writing.wait()

    # A budget whose unwinding share (a quarter) outlasts a full collection of this process.
    await harness.consumer.stop(0.4)

    assert harness.broker.commits == []
    assert client.closed
    assert harness.health.phase is ConsumerPhase.STOPPED


async def test_stop_before_start_does_nothing() -> None:
    harness = Harness()

    await harness.consumer.stop(HANG_GUARD_SECONDS)

    assert harness.broker.clients == []


class JoiningForever(FakeKafkaConsumer):
    """A client whose start() is still joining the group when the service is stopped."""

    def __init__(self, broker: FakeBroker) -> None:
        super().__init__(broker)
        self.joining = asyncio.Event()

    async def start(self) -> None:
        self.joining.set()
        await asyncio.Event().wait()


async def test_stop_while_joining_the_group_closes_the_client_without_waiting_out_the_budget() -> (
    None
):
    harness = Harness()
    client = JoiningForever(harness.broker)
    harness.broker.clients.append(client)
    # The fake broker hands out this client, as the real factory would hand out a new one.
    harness.broker.client = lambda: client  # type: ignore[method-assign]
    harness.consumer.start()
    await client.joining.wait()

    with capture_logs() as logs:
        await harness.consumer.stop(HANG_GUARD_SECONDS)

    assert client.closed
    events = [entry["event"] for entry in logs]
    assert "consumer_closed" in events
    assert "consumer_stop_timed_out" not in events


async def test_a_fetch_failing_with_a_bug_is_handled_message_by_message_and_committed() -> None:
    harness = Harness()
    real_handle = harness.pipeline.handle

    async def buggy(records: Sequence[Any]) -> None:
        # A bug outside the store that one message triggers, whatever it is fetched with.
        if any(r.topic == SPELLCHECK.topic and r.offset == 1 for r in records):
            raise RuntimeError("a bug nobody foresaw")
        await real_handle(records)

    harness.pipeline.handle = buggy  # type: ignore[method-assign]
    documents = [spellcheck("e1"), spellcheck("e2"), spellcheck("e3")]
    for document in documents:
        harness.broker.produce(SPELLCHECK, document)
    await harness.started()

    await harness.committed({SPELLCHECK: 3})

    [record] = harness.dead_letters.sent
    assert (record.offset, record.reason) == (1, "processing_failed")
    assert "RuntimeError" in record.error
    assert set(harness.repository.applied_event_ids) == {
        documents[0]["event_id"],
        documents[2]["event_id"],
    }
    assert harness.errors("unexpected") == 1
    assert harness.health.phase is ConsumerPhase.RUNNING
    await harness.consumer.stop(HANG_GUARD_SECONDS)


async def test_stop_while_the_store_is_down_commits_nothing_and_closes_the_client() -> None:
    harness = Harness()
    harness.repository.down = True
    harness.broker.produce(SPELLCHECK, spellcheck("e1"))
    client = await harness.started()
    await harness.broker.until(lambda: harness.repository.failed_calls >= 1)

    await harness.consumer.stop(HANG_GUARD_SECONDS)

    assert harness.broker.commits == []
    assert client.closed
    assert harness.health.phase is ConsumerPhase.STOPPED
    assert harness.dead_letters.sent == []


async def test_a_silent_broker_under_a_running_loop_is_seen_and_its_answer_clears_it() -> None:
    # aiokafka fails no call while its broker is silent: the loop goes on "running".
    harness = Harness(silence_seconds=0.06)
    client = await harness.started()
    client.silent = True

    # The silence alone flips the phase; the watch also asks the broker itself. A pause of this
    # process's event loop (a full collection) can flip it before the first probe: wait for both.
    await harness.broker.until(
        lambda: (
            client.probes >= 1
            and harness.health.reported_phase() is ConsumerPhase.BROKER_UNREACHABLE
        )
    )
    assert harness.health.phase is ConsumerPhase.RUNNING
    client.silent = False
    await harness.broker.until(lambda: harness.health.reported_phase() is ConsumerPhase.RUNNING)

    await harness.consumer.stop(HANG_GUARD_SECONDS)
    probes = client.probes
    await asyncio.sleep(0.1)
    # The watch went with its client.
    assert client.closed
    assert client.probes == probes
