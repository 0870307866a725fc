"""Every recorded HuleEdu message (tests/fixtures/huleedu/) says what TOPICS.md says it should.

Each expectation is written from TOPICS.md (where the batch id, essay ids and outcome sit for
that topic and commit) and evaluated on the templated message, so it never depends on the
examples' values. A fixture without an expectation fails the test: a new one must be described.
The messages are received as they are produced (templated into the last hour): a batch outcome
counts at its producer's stamp.
"""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from batch_conductor_service.consumer.translation import Event, Said, translate
from batch_conductor_service.domain.batch_state import (
    BatchChange,
    EssayResult,
    ParkedResult,
    RosterSource,
    StepOutcome,
)
from common_core.enums import BatchPhaseStatus
from tests.support import huleedu_fixtures as hf

Expect = Callable[[hf.Fixture], Said]
MAX_SKEW = timedelta(hours=1)


def stamp(f: hf.Fixture) -> datetime:
    return datetime.fromisoformat(f.at("event_timestamp").replace("Z", "+00:00"))


def change(f: hf.Fixture, batch_id: str, **facts: object) -> BatchChange:
    return BatchChange(batch_id, stamp(f), f.at("event_id"), **facts)  # type: ignore[arg-type]


def _essay_ids(f: hf.Fixture, path: str) -> list[str]:
    return [essay["essay_id"] for essay in f.at(path)]


def _results(step: str, succeeded: list[str], failed: list[str]) -> tuple[EssayResult, ...]:
    return (
        *(EssayResult(e, step, True) for e in succeeded),
        *(EssayResult(e, step, False) for e in failed),
    )


def _outcome(status: BatchPhaseStatus) -> Expect:
    def expect(f: hf.Fixture) -> Said:
        step = f.at("data.phase_name")
        return change(
            f,
            f.at("data.batch_id"),
            essays=_results(
                step,
                sorted(_essay_ids(f, "data.processed_essays")),
                sorted(f.at("data.failed_essay_ids")),
            ),
            outcome_step=step,
            outcome=StepOutcome(status, stamp(f)),
        )

    return expect


def _current_spellcheck(succeeded: bool) -> Expect:
    def expect(f: hf.Fixture) -> Said:
        result = EssayResult(f.at("data.entity_id"), "spellcheck", succeeded)
        return change(f, f.at("data.batch_id"), essays=(result,))

    return expect


def _seed_spellcheck(succeeded: bool) -> Expect:
    def expect(f: hf.Fixture) -> Said:
        essay_id = f.at("data.entity_ref.entity_id")
        batch_id = f.at("data.entity_ref.parent_id")
        if batch_id is None:
            # parent_id null in the real output: the batch is left for the rosters to say.
            return ParkedResult(f.at("event_id"), essay_id, "spellcheck", succeeded, stamp(f))
        return change(f, batch_id, essays=(EssayResult(essay_id, "spellcheck", succeeded),))

    return expect


EXPECTED: dict[str, Expect] = {
    "current/huleedu.batch.essays.registered.v1.json": lambda f: change(
        f,
        f.at("data.entity_id"),
        roster=frozenset(f.at("data.essay_ids")),
        roster_source=RosterSource.REGISTERED,
    ),
    "current/huleedu.els.batch.essays.ready.v1.json": lambda f: change(
        f,
        f.at("data.batch_id"),
        roster=frozenset(_essay_ids(f, "data.ready_essays")),
        roster_source=RosterSource.READY,
    ),
    "current/huleedu.batch.spellcheck.phase.completed.v1.json": _current_spellcheck(True),
    "current/huleedu.batch.spellcheck.phase.completed.v1.failed.json": _current_spellcheck(False),
    # Two essays succeeded and one is listed as failed: a terminal failure for that essay.
    "current/huleedu.cj_assessment.completed.v1.json": lambda f: change(
        f,
        f.at("data.entity_id"),
        essays=_results(
            "cj_assessment",
            f.at("data.processing_summary.successful_essay_ids"),
            f.at("data.processing_summary.failed_essay_ids"),
        ),
        outcome_step="cj_assessment",
        outcome=StepOutcome(BatchPhaseStatus.COMPLETED_WITH_FAILURES, stamp(f)),
    ),
    "current/huleedu.els.batch.phase.outcome.v1.json": _outcome(
        BatchPhaseStatus.COMPLETED_SUCCESSFULLY
    ),
    "current/huleedu.els.batch.phase.outcome.v1.cj_assessment_with_failures.json": _outcome(
        BatchPhaseStatus.COMPLETED_WITH_FAILURES
    ),
    "seed-era/huleedu.cj_assessment.completed.v1.json": lambda f: change(
        f,
        f.at("data.entity_ref.entity_id"),
        essays=_results("cj_assessment", [r["els_essay_id"] for r in f.at("data.rankings")], []),
        outcome_step="cj_assessment",
        outcome=StepOutcome(BatchPhaseStatus.COMPLETED_SUCCESSFULLY, stamp(f)),
    ),
    "seed-era/huleedu.els.batch_phase.outcome.v1.json": _outcome(
        BatchPhaseStatus.COMPLETED_SUCCESSFULLY
    ),
    "seed-era/huleedu.essay.spellcheck.completed.v1.json": _seed_spellcheck(True),
    "seed-era/huleedu.essay.spellcheck.completed.v1.failed.json": _seed_spellcheck(False),
    "seed-era/huleedu.essay.spellcheck.completed.v1.parent_id_set.json": _seed_spellcheck(True),
}


def consumed(fixture: hf.Fixture) -> Event:
    return translate(fixture.topic, fixture.wire(), datetime.now(UTC), MAX_SKEW)


@pytest.mark.parametrize("name", hf.fixture_names())
def test_each_fixture_says_what_topics_md_says(name: str) -> None:
    assert name in EXPECTED, f"{name} has no expected reading: describe it from TOPICS.md"
    fixture = hf.load(name)
    event = consumed(fixture)
    assert event.said == EXPECTED[name](fixture)
    assert event.event_id == fixture.at("event_id")
    assert event.correlation_id == fixture.at("correlation_id")


@pytest.mark.parametrize("name", hf.fixture_names())
def test_templating_leaves_no_example_id_behind(name: str) -> None:
    fixture = hf.load(name)
    wire = fixture.wire().decode()
    assert fixture.id_map, "the fixture has ids to template"
    for example_id in fixture.id_map:
        assert f'"{example_id}"' not in wire


def test_every_described_fixture_exists() -> None:
    # The other direction: an expectation whose fixture vanished is a silent gap.
    assert set(EXPECTED) == set(hf.fixture_names())


def test_the_real_seed_era_spellcheck_result_names_no_batch() -> None:
    # The fact the placement by roster exists for (fixtures/huleedu/README.md).
    fixture = hf.load("seed-era/huleedu.essay.spellcheck.completed.v1.json")
    said = consumed(fixture).said
    assert isinstance(said, ParkedResult)
    assert said.essay_id == fixture.at("data.entity_ref.entity_id")
    assert json.loads(fixture.wire())["data"]["entity_ref"]["parent_id"] is None
