"""Every recorded HuleEdu message, consumed by the service's own processor into the in-memory
store, changes the batch as TOPICS.md says: its roster, its essays' outcomes, its step outcome.
A result that names no batch is given one by a roster, as the platform's rosters do."""

import pytest
from prometheus_client import CollectorRegistry

from batch_conductor_service.consumer.batch_processor import EventBatchProcessor
from batch_conductor_service.consumer.fetched_batch import FetchedBatch
from batch_conductor_service.domain.batch_state import RosterSource
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from batch_conductor_service.stores.placement.memory import InMemoryEssayPlacement
from common_core.events import BatchResultReading, EssayResultReading, RosterReading
from common_core.topics import Topic
from tests.contract.test_fixture_readings import EXPECTED
from tests.support import event_factory as ev
from tests.support import huleedu_fixtures as hf
from tests.support.consumed_message import Message
from tests.support.recording_dlq import RecordingDlqProducer


@pytest.mark.parametrize("name", hf.fixture_names())
async def test_each_fixture_changes_its_batch_as_topics_md_says(name: str) -> None:
    fixture = hf.load(name)
    _, reading = EXPECTED[name](fixture)
    repository = InMemoryBatchStateRepository(ttl_seconds=3600)
    dead_letters = RecordingDlqProducer()
    processor = EventBatchProcessor(
        repository,
        dead_letters,
        BcsMetrics(CollectorRegistry()),
        placement=InMemoryEssayPlacement(ttl_seconds=3600),
    )
    messages = [Message(fixture.topic, 0, 0, fixture.wire())]
    batch_id = getattr(reading, "batch_id", None)
    if batch_id is None:
        # The real seed-era spell checker names no batch: a roster does.
        assert isinstance(reading, EssayResultReading)
        batch_id = "roster-batch"
        roster = ev.ready(batch_id, [reading.essay_id])
        messages.append(Message(Topic.BATCH_ESSAYS_READY, 0, 1, ev.encode(roster)))

    await processor.process(FetchedBatch.of(messages))

    assert dead_letters.sent == []
    snapshot = await repository.get_snapshot(batch_id)
    if isinstance(reading, RosterReading):
        assert snapshot.roster == reading.essay_ids
        assert snapshot.roster_source is RosterSource(reading.kind.value)
    elif isinstance(reading, EssayResultReading):
        outcomes = snapshot.succeeded_for(reading.step) | snapshot.failed_for(reading.step)
        assert outcomes == {reading.essay_id}
        assert (reading.essay_id in snapshot.succeeded_for(reading.step)) is reading.succeeded
    else:
        assert isinstance(reading, BatchResultReading)
        assert snapshot.succeeded_for(reading.step) == set(reading.succeeded)
        assert snapshot.failed_for(reading.step) == set(reading.failed)
        outcome = snapshot.batch_outcomes[reading.step]
        assert outcome.status is reading.status
