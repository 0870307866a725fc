"""Every recorded HuleEdu message (tests/fixtures/huleedu/) reads as TOPICS.md says it should.

Each expectation is written from TOPICS.md (where the batch id, essay ids and outcome sit for
that topic and commit) and evaluated on the templated message, so it never depends on the
examples' values. A fixture without an expectation fails the test: a new one must be described.
"""

from collections.abc import Callable

import orjson
import pytest

from common_core.enums import BatchPhaseStatus
from common_core.events import (
    BatchResultReading,
    EssayResultReading,
    Generation,
    Reading,
    RosterKind,
    RosterReading,
    read_event,
)
from tests.support import huleedu_fixtures as hf

CURRENT, SEED = Generation.CURRENT, Generation.SEED_ERA
Expect = Callable[[hf.Fixture], tuple[Generation, Reading]]


def _ids(values: list[str]) -> frozenset[str]:
    return frozenset(values)


def _essay_ids(f: hf.Fixture, path: str) -> list[str]:
    return [essay["essay_id"] for essay in f.at(path)]


def _outcome(status: BatchPhaseStatus, generation: Generation) -> Expect:
    def expect(f: hf.Fixture) -> tuple[Generation, Reading]:
        return generation, BatchResultReading(
            f.at("data.batch_id"),
            f.at("data.phase_name"),
            status,
            succeeded=tuple(sorted(_essay_ids(f, "data.processed_essays"))),
            failed=tuple(sorted(f.at("data.failed_essay_ids"))),
        )

    return expect


def _current_spellcheck(succeeded: bool) -> Expect:
    def expect(f: hf.Fixture) -> tuple[Generation, Reading]:
        return CURRENT, EssayResultReading(
            f.at("data.entity_id"), "spellcheck", f.at("data.batch_id"), succeeded
        )

    return expect


def _seed_spellcheck(succeeded: bool) -> Expect:
    def expect(f: hf.Fixture) -> tuple[Generation, Reading]:
        # parent_id null in the real output: the batch is left for the roster to say.
        return SEED, EssayResultReading(
            f.at("data.entity_ref.entity_id"),
            "spellcheck",
            f.at("data.entity_ref.parent_id"),
            succeeded,
        )

    return expect


EXPECTED: dict[str, Expect] = {
    "current/huleedu.batch.essays.registered.v1.json": lambda f: (
        CURRENT,
        RosterReading(f.at("data.entity_id"), _ids(f.at("data.essay_ids")), RosterKind.REGISTERED),
    ),
    "current/huleedu.els.batch.essays.ready.v1.json": lambda f: (
        CURRENT,
        RosterReading(
            f.at("data.batch_id"), _ids(_essay_ids(f, "data.ready_essays")), RosterKind.READY
        ),
    ),
    "current/huleedu.batch.spellcheck.phase.completed.v1.json": _current_spellcheck(True),
    "current/huleedu.batch.spellcheck.phase.completed.v1.failed.json": _current_spellcheck(False),
    # Two essays succeeded and one is listed as failed: a terminal failure for that essay.
    "current/huleedu.cj_assessment.completed.v1.json": lambda f: (
        CURRENT,
        BatchResultReading(
            f.at("data.entity_id"),
            "cj_assessment",
            BatchPhaseStatus.COMPLETED_WITH_FAILURES,
            succeeded=tuple(f.at("data.processing_summary.successful_essay_ids")),
            failed=tuple(f.at("data.processing_summary.failed_essay_ids")),
        ),
    ),
    "current/huleedu.els.batch.phase.outcome.v1.json": _outcome(
        BatchPhaseStatus.COMPLETED_SUCCESSFULLY, CURRENT
    ),
    "current/huleedu.els.batch.phase.outcome.v1.cj_assessment_with_failures.json": _outcome(
        BatchPhaseStatus.COMPLETED_WITH_FAILURES, CURRENT
    ),
    "seed-era/huleedu.cj_assessment.completed.v1.json": lambda f: (
        SEED,
        BatchResultReading(
            f.at("data.entity_ref.entity_id"),
            "cj_assessment",
            BatchPhaseStatus.COMPLETED_SUCCESSFULLY,
            succeeded=tuple(r["els_essay_id"] for r in f.at("data.rankings")),
        ),
    ),
    "seed-era/huleedu.els.batch_phase.outcome.v1.json": _outcome(
        BatchPhaseStatus.COMPLETED_SUCCESSFULLY, SEED
    ),
    "seed-era/huleedu.essay.spellcheck.completed.v1.json": _seed_spellcheck(True),
    "seed-era/huleedu.essay.spellcheck.completed.v1.failed.json": _seed_spellcheck(False),
    "seed-era/huleedu.essay.spellcheck.completed.v1.parent_id_set.json": _seed_spellcheck(True),
}


@pytest.mark.parametrize("name", hf.fixture_names())
def test_each_fixture_reads_as_topics_md_says(name: str) -> None:
    assert name in EXPECTED, f"{name} has no expected reading: describe it from TOPICS.md"
    fixture = hf.load(name)
    read = read_event(fixture.topic, orjson.loads(fixture.wire()))
    assert (read.generation, read.reading) == EXPECTED[name](fixture)
    assert read.event_id == fixture.at("event_id")
    assert read.correlation_id == fixture.at("correlation_id")


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
    # The fact the roster placement exists for (fixtures/huleedu/README.md).
    fixture = hf.load("seed-era/huleedu.essay.spellcheck.completed.v1.json")
    read = read_event(fixture.topic, fixture.document)
    assert isinstance(read.reading, EssayResultReading)
    assert read.reading.batch_id is None
    assert read.reading.essay_id == fixture.at("data.entity_ref.entity_id")
