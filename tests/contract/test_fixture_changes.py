"""Every recorded HuleEdu message, consumed by the service's own pipeline into the in-memory
stores, changes its batch as TOPICS.md says: its roster, its essays' results, its step outcome.
A result that names no batch is given one by a roster, as the platform's rosters do."""

import pytest

from batch_conductor_service.domain.batch_state import (
    BatchChange,
    ParkedResult,
    RosterSource,
)
from batch_conductor_service.stores.memory import InMemoryBatchStateRepository
from common_core.topics import Topic
from tests.contract.test_fixture_readings import EXPECTED
from tests.support import event_factory as ev
from tests.support import huleedu_fixtures as hf
from tests.support.consumed_message import Message
from tests.support.pipeline_harness import memory_harness


@pytest.mark.parametrize("name", hf.fixture_names())
async def test_each_fixture_changes_its_batch_as_topics_md_says(name: str) -> None:
    fixture = hf.load(name)
    said = EXPECTED[name](fixture)
    harness = memory_harness()
    messages = [Message(fixture.topic, 0, 0, fixture.wire())]
    if isinstance(said, ParkedResult):
        # The real seed-era spell checker names no batch: a roster does.
        change = said.placed_in("roster-batch")
        roster = ev.ready(change.batch_id, [said.essay_id])
        messages.append(Message(Topic.BATCH_ESSAYS_READY, 0, 1, ev.encode(roster)))
    else:
        assert isinstance(said, BatchChange)
        change = said

    await harness.handle(messages)

    assert harness.dead_letters.sent == []
    repository = harness.repository
    assert isinstance(repository, InMemoryBatchStateRepository)
    facts = await repository.facts(change.batch_id)
    assert facts is not None
    assert fixture.at("event_id") in facts.event_ids
    if change.roster is not None:
        assert change.roster_source is not None
        assert facts.rosters == {RosterSource(change.roster_source): set(change.roster)}
    for essay in change.essays:
        holding = facts.succeeded if essay.succeeded else facts.failed
        assert essay.essay_id in holding[essay.step]
    stored = [ids for by_step in (facts.succeeded, facts.failed) for ids in by_step.values()]
    assert sum(map(len, stored)) == len(change.essays)
    if change.outcome is not None:
        assert change.outcome_step is not None
        assert facts.latest_outcomes()[change.outcome_step] == change.outcome
