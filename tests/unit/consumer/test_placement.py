"""Results that name no batch are applied to the batches whose rosters name their essays,
whatever the order of arrival, the fetches they come in, or the replicas that take them."""

import asyncio
import itertools
import random
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from batch_conductor_service.consumer.batch_processor import EventBatchProcessor
from batch_conductor_service.consumer.fetched_batch import FetchedBatch
from batch_conductor_service.domain.batch_state import EssayOutcome
from batch_conductor_service.domain.placement import UnplacedResult
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from batch_conductor_service.stores.placement.memory import (
    SWEEP_EVERY_WRITES,
    InMemoryEssayPlacement,
)
from common_core.topics import CurrentTopic, Topic
from tests.support import event_factory as ev
from tests.support.consumed_message import Message
from tests.support.recording_dlq import RecordingDlqProducer


def message(topic: str, document: dict[str, Any], offset: int = 0) -> Message:
    return Message(topic, 0, offset, orjson.dumps(document))


def seed_result(essay_id: str, status: str = "spellchecked_success") -> Message:
    # As the real seed-era spell checker sends it: no parent id anywhere.
    return message(Topic.SPELLCHECK_COMPLETED, ev.spellcheck(None, essay_id, status))


def current_result(essay_id: str, status: str = "completed") -> Message:
    data = {
        "entity_id": essay_id,
        "batch_id": "",
        "correlation_id": str(uuid.uuid4()),
        "status": status,
        "processing_duration_ms": 5,
        "timestamp": "2025-06-21T12:00:00Z",
    }
    return message(
        CurrentTopic.SPELLCHECK_PHASE_COMPLETED,
        ev.envelope(CurrentTopic.SPELLCHECK_PHASE_COMPLETED, data),
    )


def roster(batch_id: str, essay_ids: list[str]) -> Message:
    return message(Topic.BATCH_ESSAYS_READY, ev.ready(batch_id, essay_ids))


AT = datetime(2025, 6, 21, 12, tzinfo=UTC)


class YieldingPlacement:
    """Memory placement that lets other tasks run around every call, as a network store does,
    so that two replicas' placement steps really interleave."""

    def __init__(self, inner: InMemoryEssayPlacement, seed: int = 0) -> None:
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

    async def keep(self, results: Sequence[UnplacedResult]) -> None:
        await self._pause()
        await self._inner.keep(results)
        await self._pause()

    async def kept_for(self, essay_ids: Collection[str]) -> dict[str, list[UnplacedResult]]:
        await self._pause()
        found = await self._inner.kept_for(essay_ids)
        await self._pause()
        return found


class Service:
    """One repository and one placement, shared by as many replicas as a test wants."""

    def __init__(self, replicas: int = 1, seed: int = 0) -> None:
        self.registry = CollectorRegistry()
        self.metrics = BcsMetrics(self.registry)
        self.repository = InMemoryBatchStateRepository(ttl_seconds=3600)
        self.placement = YieldingPlacement(InMemoryEssayPlacement(ttl_seconds=3600), seed)
        self.dead_letters = RecordingDlqProducer()
        self.replicas = [
            EventBatchProcessor(
                self.repository, self.dead_letters, self.metrics, placement=self.placement
            )
            for _ in range(replicas)
        ]

    async def fetch(self, messages: Sequence[Message], replica: int = 0) -> None:
        await self.replicas[replica].process(FetchedBatch.of(messages))

    async def spellchecked(self, batch_id: str) -> frozenset[str]:
        return (await self.repository.get_snapshot(batch_id)).succeeded_for("spellcheck")

    async def spellcheck_failed(self, batch_id: str) -> frozenset[str]:
        return (await self.repository.get_snapshot(batch_id)).failed_for("spellcheck")

    def counted(self, outcome: str) -> float:
        value = self.registry.get_sample_value("bcs_unplaced_results_total", {"outcome": outcome})
        return value or 0.0


async def test_a_result_before_its_roster_is_parked_then_placed_by_the_roster() -> None:
    service = Service()
    await service.fetch([seed_result("e1"), current_result("e2", "failed")])
    assert service.counted("parked") == 2
    assert service.dead_letters.sent == []
    assert await service.spellchecked("b1") == frozenset()

    await service.fetch([roster("b1", ["e1", "e2", "e3"])])

    assert await service.spellchecked("b1") == {"e1"}
    assert await service.spellcheck_failed("b1") == {"e2"}
    assert service.counted("placed_by_roster") == 2


async def test_a_result_after_its_roster_is_placed_on_arrival() -> None:
    service = Service()
    await service.fetch([roster("b1", ["e1"])])
    await service.fetch([seed_result("e1")])
    assert await service.spellchecked("b1") == {"e1"}
    assert service.counted("placed_on_arrival") == 1
    assert service.counted("parked") == 0


async def test_result_and_roster_in_one_fetch_meet_in_either_order() -> None:
    for order in ("result first", "roster first"):
        service = Service()
        both = [seed_result("e1"), roster("b1", ["e1"])]
        await service.fetch(both if order == "result first" else both[::-1])
        assert await service.spellchecked("b1") == {"e1"}, order


async def test_a_non_terminal_result_without_batch_changes_nothing() -> None:
    service = Service()
    await service.fetch([roster("b1", ["e1"]), current_result("e1", "in_progress")])
    assert await service.spellchecked("b1") == frozenset()
    assert service.counted("not_terminal") == 1


async def test_an_essay_on_two_rosters_has_its_result_in_both_batches() -> None:
    service = Service()
    await service.fetch([roster("b1", ["e1"])])
    await service.fetch([seed_result("e1")])
    await service.fetch([roster("b2", ["e1", "e2"])])
    assert await service.spellchecked("b1") == {"e1"}
    assert await service.spellchecked("b2") == {"e1"}


async def test_a_redelivered_result_counts_once() -> None:
    service = Service()
    result = seed_result("e1")
    await service.fetch([result])
    await service.fetch([roster("b1", ["e1"]), result])
    await service.fetch([result])
    snapshot = await service.repository.get_snapshot("b1")
    assert snapshot.succeeded_for("spellcheck") == {"e1"}
    # Parked once; then placed with the roster of the same fetch, and again on redelivery.
    assert (service.counted("parked"), service.counted("placed_on_arrival")) == (1, 2)
    assert service.dead_letters.sent == []
    # Stored new once (with the roster); both other deliveries found it there.
    processed = {
        outcome: service.registry.get_sample_value(
            "bcs_events_processed_total",
            {"event_type": Topic.SPELLCHECK_COMPLETED.value, "outcome": outcome},
        )
        for outcome in ("parked", "applied", "duplicate")
    }
    assert processed == {"parked": 1.0, "applied": 1.0, "duplicate": 1.0}


BATCHES = {"b1": ["e1", "e2"], "b2": ["e2", "e3"], "b3": ["e4"]}
RESULTS = [("e1", True), ("e2", True), ("e3", False), ("e4", True), ("e5", True)]


def expected_state() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    outcomes = dict(RESULTS)
    return {
        batch: (
            frozenset(e for e in essays if outcomes[e]),
            frozenset(e for e in essays if not outcomes[e]),
        )
        for batch, essays in BATCHES.items()
    }


def all_messages() -> list[Message]:
    rosters = [roster(batch, essays) for batch, essays in BATCHES.items()]
    results = [
        seed_result(e, "spellchecked_success" if ok else "spellcheck_failed")
        if i % 2
        else current_result(e, "completed" if ok else "failed")
        for i, (e, ok) in enumerate(RESULTS)
    ]
    return rosters + results


async def final_state(service: Service) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    return {
        batch: (await service.spellchecked(batch), await service.spellcheck_failed(batch))
        for batch in BATCHES
    }


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_any_order_and_any_split_into_fetches_ends_in_the_same_state(data: st.DataObject) -> None:
    messages = data.draw(st.permutations(all_messages()))
    cuts = data.draw(st.lists(st.integers(1, len(messages) - 1), unique=True, max_size=4))
    bounds = [0, *sorted(cuts), len(messages)]
    fetches = [messages[a:b] for a, b in itertools.pairwise(bounds)]

    async def run() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        service = Service()
        for fetch in fetches:
            await service.fetch(fetch)
        return await final_state(service)

    assert asyncio.run(run()) == expected_state()


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_replicas_racing_on_other_partitions_lose_no_placement(data: st.DataObject) -> None:
    messages = data.draw(st.permutations(all_messages()))
    owner = data.draw(st.lists(st.integers(0, 2), min_size=len(messages), max_size=len(messages)))
    seed = data.draw(st.integers(0, 2**32))

    async def run() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        service = Service(replicas=3, seed=seed)
        fetches = [[m for m, o in zip(messages, owner, strict=True) if o == r] for r in range(3)]
        await asyncio.gather(
            *(service.fetch([m], replica=r) for r, fetch in enumerate(fetches) for m in fetch)
        )
        return await final_state(service)

    assert asyncio.run(run()) == expected_state()


async def test_the_memory_placement_forgets_what_expired() -> None:
    now = [0.0]
    placement = InMemoryEssayPlacement(ttl_seconds=10, clock=lambda: now[0])
    await placement.index_rosters({"b1": ["e1"]})
    await placement.keep([UnplacedResult("ev-1", "e2", "spellcheck", EssayOutcome.SUCCEEDED, AT)])
    now[0] = 11.0
    assert await placement.batches_of(["e1"]) == {}
    assert await placement.kept_for(["e2"]) == {}
    for i in range(SWEEP_EVERY_WRITES):
        await placement.index_rosters({"b2": [f"fresh-{i}"]})
    assert len(placement) == SWEEP_EVERY_WRITES
