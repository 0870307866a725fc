"""The tolerant reader: the payload decides its generation, every topic takes both, and what
neither generation accepts is refused with the errors of the format it came closest to."""

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common_core.enums import BatchPhaseStatus
from common_core.events import (
    BatchResultReading,
    EssayResultReading,
    Generation,
    UnknownTopicError,
    UnreadableEventError,
    read_event,
)
from common_core.events.topic_formats import FORMATS_BY_TOPIC
from common_core.topics import CurrentTopic, Topic
from tests.support import huleedu_fixtures as hf

SEED_SPELLCHECK = "seed-era/huleedu.essay.spellcheck.completed.v1.json"
CURRENT_SPELLCHECK = "current/huleedu.batch.spellcheck.phase.completed.v1.json"
CURRENT_CJ = "current/huleedu.cj_assessment.completed.v1.json"
SEED_CJ = "seed-era/huleedu.cj_assessment.completed.v1.json"
CURRENT_OUTCOME = "current/huleedu.els.batch.phase.outcome.v1.json"
SEED_OUTCOME = "seed-era/huleedu.els.batch_phase.outcome.v1.json"


def _with_data(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**document, "data": {**document["data"], **changes}}


@pytest.mark.parametrize("name", [SEED_SPELLCHECK, CURRENT_SPELLCHECK])
@pytest.mark.parametrize(
    "topic", [Topic.SPELLCHECK_COMPLETED, CurrentTopic.SPELLCHECK_PHASE_COMPLETED]
)
def test_either_spellcheck_shape_reads_on_either_spellcheck_topic(name: str, topic: str) -> None:
    fixture = hf.load(name)
    assert read_event(topic, fixture.document) == read_event(fixture.topic, fixture.document)


@pytest.mark.parametrize("name", [SEED_OUTCOME, CURRENT_OUTCOME])
@pytest.mark.parametrize("topic", [Topic.BATCH_PHASE_OUTCOME, CurrentTopic.BATCH_PHASE_OUTCOME])
def test_either_outcome_shape_reads_on_either_outcome_topic(name: str, topic: str) -> None:
    fixture = hf.load(name)
    assert read_event(topic, fixture.document) == read_event(fixture.topic, fixture.document)


@pytest.mark.parametrize(
    "correlation",
    [
        {"correlation_id": "5f0c1d2e-0000-4000-8000-000000000001"},
        {"correlation_id": "req-42"},
        {"correlation_id": None},
        {},
    ],
    ids=["uuid", "string", "null", "absent"],
)
@pytest.mark.parametrize(
    "metadata",
    [{"metadata": {"partition_key": "k", "traceparent": "00-ab"}}, {"metadata": None}, {}],
    ids=["metadata", "null-metadata", "no-metadata"],
)
def test_envelopes_of_both_generations_are_read(
    correlation: dict[str, Any], metadata: dict[str, Any]
) -> None:
    fixture = hf.load(CURRENT_CJ)
    document = {
        k: v for k, v in fixture.document.items() if k not in ("correlation_id", "metadata")
    }
    read = read_event(fixture.topic, {**document, **correlation, **metadata})
    assert read.correlation_id == correlation.get("correlation_id")
    assert isinstance(read.reading, BatchResultReading)


@settings(deadline=None)
@given(
    status=st.sampled_from(
        ["completed_successfully", "completed_with_failures", "failed_critically"]
    ),
    flips=st.lists(st.booleans(), min_size=30, max_size=30),
    name=st.sampled_from([SEED_OUTCOME, CURRENT_OUTCOME]),
)
def test_phase_status_is_read_in_any_case(status: str, flips: list[bool], name: str) -> None:
    spelled = "".join(c.upper() if flip else c for c, flip in zip(status, flips, strict=False))
    fixture = hf.load(name)
    read = read_event(fixture.topic, _with_data(fixture.document, phase_status=spelled))
    assert isinstance(read.reading, BatchResultReading)
    assert read.reading.status is BatchPhaseStatus.parse(status)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("processing_pipelines", None),
        ("cancelled", BatchPhaseStatus.FAILED_CRITICALLY),
        ("COMPLETED_WITH_FAILURES", BatchPhaseStatus.COMPLETED_WITH_FAILURES),
    ],
)
def test_current_outcome_statuses_under_way_say_nothing_terminal(
    status: str, expected: BatchPhaseStatus | None
) -> None:
    fixture = hf.load(CURRENT_OUTCOME)
    read = read_event(fixture.topic, _with_data(fixture.document, phase_status=status))
    assert isinstance(read.reading, BatchResultReading)
    assert read.reading.status is expected


def test_current_cj_with_every_essay_failed_is_a_failed_step() -> None:
    fixture = hf.load(CURRENT_CJ)
    summary = fixture.at("data.processing_summary")
    everyone = summary["successful_essay_ids"] + summary["failed_essay_ids"]
    document = _with_data(
        fixture.document,
        status="failed_critically",
        processing_summary={**summary, "successful_essay_ids": [], "failed_essay_ids": everyone},
    )
    read = read_event(fixture.topic, document)
    assert read.reading == BatchResultReading(
        fixture.at("data.entity_id"),
        "cj_assessment",
        BatchPhaseStatus.FAILED_CRITICALLY,
        failed=tuple(everyone),
    )


def test_current_cj_without_entity_id_takes_the_batch_from_its_system_metadata() -> None:
    fixture = hf.load(CURRENT_CJ)
    read = read_event(fixture.topic, _with_data(fixture.document, entity_id=None))
    assert isinstance(read.reading, BatchResultReading)
    assert read.reading.batch_id == fixture.at("data.system_metadata.entity_id")


def test_current_spellcheck_with_a_blank_batch_id_is_left_to_the_roster() -> None:
    fixture = hf.load(CURRENT_SPELLCHECK)
    read = read_event(fixture.topic, _with_data(fixture.document, batch_id="  "))
    assert isinstance(read.reading, EssayResultReading)
    assert read.reading.batch_id is None


@pytest.mark.parametrize("status", ["pending", "IN_PROGRESS", "queued"])
def test_current_spellcheck_status_under_way_is_not_terminal(status: str) -> None:
    fixture = hf.load(CURRENT_SPELLCHECK)
    read = read_event(fixture.topic, _with_data(fixture.document, status=status))
    assert isinstance(read.reading, EssayResultReading)
    assert read.reading.succeeded is None


@pytest.mark.parametrize(
    ("name", "field", "closest"),
    [
        (CURRENT_CJ, "system_metadata", "CJAssessmentCompletedV2 (current)"),
        (SEED_CJ, "entity_ref", "CJAssessmentCompletedV1 (seed-era)"),
        (CURRENT_SPELLCHECK, "entity_id", "SpellcheckPhaseCompletedV1 (current)"),
        (SEED_SPELLCHECK, "status", "SpellcheckResultDataV1 (seed-era)"),
        (CURRENT_OUTCOME, "phase_name", "ELSBatchPhaseOutcomeV2 (current)"),
        (SEED_OUTCOME, "batch_id", "ELSBatchPhaseOutcomeV1 (seed-era)"),
    ],
)
def test_a_payload_no_format_accepts_gets_the_errors_of_the_closest(
    name: str, field: str, closest: str
) -> None:
    fixture = hf.load(name)
    data = {k: v for k, v in fixture.document["data"].items() if k != field}
    with pytest.raises(UnreadableEventError) as caught:
        read_event(fixture.topic, {**fixture.document, "data": data})
    assert caught.value.detail.startswith(closest)
    assert f"data.{field}" in caught.value.detail
    assert caught.value.correlation_id == fixture.at("correlation_id")


def _known_fields(topic: str) -> set[str]:
    return {field for fmt in FORMATS_BY_TOPIC[topic] for field in fmt.model.model_fields}


@settings(deadline=None)
@given(
    name=st.sampled_from(hf.fixture_names()),
    extras=st.dictionaries(st.text(min_size=1, max_size=12), st.integers() | st.text(), max_size=4),
)
def test_unknown_payload_fields_never_change_the_reading(name: str, extras: dict[str, Any]) -> None:
    fixture = hf.load(name)
    known = _known_fields(fixture.topic) | set(fixture.document["data"])
    extras = {key: value for key, value in extras.items() if key not in known}
    document = copy.deepcopy(fixture.document)
    document["data"].update(extras)
    assert read_event(fixture.topic, document) == read_event(fixture.topic, fixture.document)


@settings(deadline=None)
@given(name=st.sampled_from(hf.fixture_names()), data=st.data())
def test_dropping_a_field_either_still_reads_or_names_it(name: str, data: st.DataObject) -> None:
    fixture = hf.load(name)
    field = data.draw(st.sampled_from(sorted(fixture.document["data"])))
    document = copy.deepcopy(fixture.document)
    del document["data"][field]
    detail = _refusal(fixture.topic, document)
    assert detail is None or f"data.{field}" in detail


def _refusal(topic: str, document: dict[str, Any]) -> str | None:
    try:
        read_event(topic, document)
    except UnreadableEventError as exc:
        return exc.detail
    return None


def test_an_unknown_topic_is_refused() -> None:
    with pytest.raises(UnknownTopicError):
        read_event("huleedu.something.else.v1", {})


@pytest.mark.parametrize("document", [[], "text", None, {"event_id": "not-a-uuid"}])
def test_a_broken_envelope_is_unreadable(document: Any) -> None:
    with pytest.raises(UnreadableEventError):
        read_event(Topic.CJ_ASSESSMENT_COMPLETED, document)


def test_generation_is_what_the_payload_says_not_the_topic() -> None:
    fixture = hf.load(SEED_OUTCOME)
    read = read_event(CurrentTopic.BATCH_PHASE_OUTCOME, fixture.document)
    assert read.generation is Generation.SEED_ERA


def test_rankings_and_summaries_skip_blank_essay_ids_as_the_original_did() -> None:
    seed = hf.load(SEED_CJ)
    rankings = [*seed.at("data.rankings"), {"rank": 4, "els_essay_id": "", "score": None}]
    rankings.append({"rank": 5, "els_essay_id": None, "score": None})
    read = read_event(seed.topic, _with_data(seed.document, rankings=rankings))
    assert isinstance(read.reading, BatchResultReading)
    assert read.reading.succeeded == tuple(r["els_essay_id"] for r in rankings[:3])

    current = hf.load(CURRENT_CJ)
    summary = current.at("data.processing_summary")
    padded = {**summary, "failed_essay_ids": [*summary["failed_essay_ids"], " "]}
    read = read_event(current.topic, _with_data(current.document, processing_summary=padded))
    assert isinstance(read.reading, BatchResultReading)
    assert read.reading.failed == tuple(summary["failed_essay_ids"])


def test_an_essay_id_with_control_characters_is_still_refused() -> None:
    seed = hf.load(SEED_CJ)
    rankings = [{"rank": 1, "els_essay_id": "e\x001", "score": 1.0}]
    with pytest.raises(UnreadableEventError):
        read_event(seed.topic, _with_data(seed.document, rankings=rankings))
