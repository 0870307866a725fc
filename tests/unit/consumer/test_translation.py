"""One consumed message becomes what it says about a batch (a change, a result for the rosters to
place, or nothing), or an unprocessable error with its dead-letter reason.

The tolerant reader: the payload decides its generation, every topic of a kind takes both, and
what neither generation accepts is refused with the errors of the format it claims more strongly.
The time rule: an event counts at its producer's stamp, a batch outcome at the earlier of that
stamp and its arrival, and an event stamped further ahead than the allowed skew is refused.
"""

import copy
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_conductor_service.consumer.translation import (
    CONSUMED_TOPICS,
    FORMATS_BY_TOPIC,
    Event,
    UnprocessableEventError,
    has_paths,
    translate,
)
from batch_conductor_service.domain.batch_state import (
    BatchChange,
    EssayResult,
    ParkedResult,
    RosterSource,
    StepOutcome,
)
from common_core.enums import BatchPhaseStatus
from common_core.events import DeadLetterReason
from common_core.topics import CurrentTopic, Topic
from tests.support import event_factory as ev
from tests.support import huleedu_fixtures as hf

# The event_factory's default stamp; events are received an hour later unless a test says.
AT = datetime(2025, 6, 21, 12, 0, 0, 123456, tzinfo=UTC)
RECEIVED = AT + timedelta(hours=1)
MAX_SKEW = timedelta(hours=1)

SEED_SPELLCHECK = "seed-era/huleedu.essay.spellcheck.completed.v1.json"
CURRENT_SPELLCHECK = "current/huleedu.batch.spellcheck.phase.completed.v1.json"
CURRENT_CJ = "current/huleedu.cj_assessment.completed.v1.json"
SEED_CJ = "seed-era/huleedu.cj_assessment.completed.v1.json"
CURRENT_OUTCOME = "current/huleedu.els.batch.phase.outcome.v1.json"
SEED_OUTCOME = "seed-era/huleedu.els.batch_phase.outcome.v1.json"


def read(topic: str, raw: bytes | None, received_at: datetime = RECEIVED) -> Event:
    return translate(topic, raw, received_at, MAX_SKEW)


def change_of(topic: str, document: dict[str, Any]) -> BatchChange:
    said = read(topic, ev.encode(document)).said
    assert isinstance(said, BatchChange)
    return said


def read_fixture(topic: str, document: dict[str, Any]) -> Event:
    # The fixtures are stamped within the last hour (huleedu_fixtures): received now. Written
    # with json, as the platform writes it (it also writes integers beyond 64 bits).
    return translate(topic, json.dumps(document).encode(), datetime.now(UTC), MAX_SKEW)


def refusal(topic: str, raw: bytes | None) -> UnprocessableEventError:
    with pytest.raises(UnprocessableEventError) as caught:
        read(topic, raw)
    return caught.value


def _with_data(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**document, "data": {**document["data"], **changes}}


def test_the_contract_topics_of_both_generations_are_consumed() -> None:
    seed_era = {t.value for t in Topic if t is not Topic.PIPELINE_RESOLUTION}
    assert set(CONSUMED_TOPICS) == seed_era | {t.value for t in CurrentTopic}


def test_registered_sets_a_registered_roster() -> None:
    event = ev.registered("b1", ["e1", "e2"], correlation_id="c-1")
    translated = read(Topic.BATCH_ESSAYS_REGISTERED, ev.encode(event))
    assert translated == Event(
        event["event_id"],
        "c-1",
        BatchChange(
            "b1",
            AT,
            event["event_id"],
            roster=frozenset({"e1", "e2"}),
            roster_source=RosterSource.REGISTERED,
        ),
    )


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_correlation_id_is_read_as_absent(blank: str) -> None:
    # Found by the hostile-translation property test: "" went on as a correlation id.
    event = ev.registered("b1", ["e1"], correlation_id=blank)
    assert read(Topic.BATCH_ESSAYS_REGISTERED, ev.encode(event)).correlation_id is None


def test_ready_sets_a_ready_roster() -> None:
    change = change_of(Topic.BATCH_ESSAYS_READY, ev.ready("b1", ["e2"]))
    assert change.roster == {"e2"}
    assert change.roster_source is RosterSource.READY


@pytest.mark.parametrize(
    ("status", "succeeded"), [("spellchecked_success", True), ("spellcheck_failed", False)]
)
def test_a_terminal_spellcheck_status_records_the_essays_result(
    status: str, succeeded: bool
) -> None:
    change = change_of(Topic.SPELLCHECK_COMPLETED, ev.spellcheck("b1", "e1", status))
    assert change.batch_id == "b1"
    assert change.essays == (EssayResult("e1", "spellcheck", succeeded),)
    assert change.outcome is None


def test_another_spellcheck_status_is_a_valid_event_without_effect() -> None:
    change = change_of(Topic.SPELLCHECK_COMPLETED, ev.spellcheck("b1", "e1", "awaiting_spellcheck"))
    assert (change.batch_id, change.essays, change.outcome) == ("b1", (), None)


def test_a_spellcheck_without_parent_id_uses_the_system_metadata_parent() -> None:
    change = change_of(Topic.SPELLCHECK_COMPLETED, ev.spellcheck(None, "e1", metadata_parent="b9"))
    assert change.batch_id == "b9"


def test_a_spellcheck_naming_no_batch_is_a_result_for_the_rosters_to_place() -> None:
    event = ev.spellcheck(None, "e1", metadata_parent=None, correlation_id="c-7")
    translated = read(Topic.SPELLCHECK_COMPLETED, ev.encode(event))
    assert translated == Event(
        event["event_id"], "c-7", ParkedResult(event["event_id"], "e1", "spellcheck", True, AT)
    )


def test_a_result_naming_no_batch_and_no_terminal_status_says_nothing() -> None:
    event = ev.spellcheck(None, "e1", "awaiting_spellcheck", metadata_parent=None)
    assert read(Topic.SPELLCHECK_COMPLETED, ev.encode(event)).said is None


def test_cj_completed_records_every_ranked_essay_and_the_batch_completion() -> None:
    change = change_of(Topic.CJ_ASSESSMENT_COMPLETED, ev.cj_completed("b1", ["e1", "e2"]))
    assert change.batch_id == "b1"
    assert set(change.essays) == {
        EssayResult("e1", "cj_assessment", True),
        EssayResult("e2", "cj_assessment", True),
    }
    assert change.outcome_step == "cj_assessment"
    assert change.outcome == StepOutcome(BatchPhaseStatus.COMPLETED_SUCCESSFULLY, AT)


def test_cj_failed_records_a_critical_batch_failure() -> None:
    change = change_of(Topic.CJ_ASSESSMENT_FAILED, ev.cj_failed("b1"))
    assert change.outcome_step == "cj_assessment"
    assert change.outcome == StepOutcome(BatchPhaseStatus.FAILED_CRITICALLY, AT)
    assert change.essays == ()


def test_a_phase_outcome_records_the_batch_status_and_each_essay() -> None:
    event = ev.phase_outcome("b1", "nlp", "completed_with_failures", ["e1", "e2"], ["e3"])
    change = change_of(Topic.BATCH_PHASE_OUTCOME, event)
    assert change.outcome_step == "nlp"
    assert change.outcome == StepOutcome(BatchPhaseStatus.COMPLETED_WITH_FAILURES, AT)
    assert set(change.essays) == {
        EssayResult("e1", "nlp", True),
        EssayResult("e2", "nlp", True),
        EssayResult("e3", "nlp", False),
    }


def test_a_naive_event_timestamp_is_read_as_utc() -> None:
    change = change_of(
        Topic.CJ_ASSESSMENT_FAILED, ev.cj_failed("b1", timestamp="2025-06-21T12:00:00")
    )
    assert change.occurred_at == datetime(2025, 6, 21, 12, tzinfo=UTC)


# --- The time rule ---------------------------------------------------------------------------

OUTCOME_EVENTS = [
    (Topic.CJ_ASSESSMENT_FAILED, lambda stamp: ev.cj_failed("b1", timestamp=stamp)),
    (Topic.CJ_ASSESSMENT_COMPLETED, lambda stamp: ev.cj_completed("b1", ["e1"], timestamp=stamp)),
    (
        Topic.BATCH_PHASE_OUTCOME,
        lambda stamp: ev.phase_outcome("b1", "nlp", "COMPLETED_SUCCESSFULLY", [], timestamp=stamp),
    ),
]


@settings(deadline=None)
@given(
    kind=st.sampled_from(OUTCOME_EVENTS),
    # Milliseconds between the stamp and the arrival, both ways, up to the allowed skew.
    ahead_ms=st.integers(-3 * 3600 * 1000, int(MAX_SKEW.total_seconds() * 1000)),
)
def test_an_outcome_counts_at_the_earlier_of_its_stamp_and_its_arrival(
    kind: Any, ahead_ms: int
) -> None:
    topic, build = kind
    stamped = RECEIVED + timedelta(milliseconds=ahead_ms)
    change = change_of_at(topic, build(stamped.isoformat()), RECEIVED)
    assert change.outcome is not None
    assert change.outcome.at == min(stamped, RECEIVED)
    # The event itself still happened when its producer says.
    assert change.occurred_at == stamped


def change_of_at(topic: str, document: dict[str, Any], received_at: datetime) -> BatchChange:
    said = read(topic, ev.encode(document), received_at).said
    assert isinstance(said, BatchChange)
    return said


@pytest.mark.parametrize("ahead", [timedelta(seconds=2), timedelta(minutes=30)])
def test_an_outcome_stamped_ahead_of_its_arrival_counts_at_its_arrival(ahead: timedelta) -> None:
    event = ev.cj_failed("b1", timestamp=(RECEIVED + ahead).isoformat())
    change = change_of_at(Topic.CJ_ASSESSMENT_FAILED, event, RECEIVED)
    assert change.outcome == StepOutcome(BatchPhaseStatus.FAILED_CRITICALLY, RECEIVED)


def test_an_essay_result_stamped_ahead_keeps_its_stamp() -> None:
    stamped = RECEIVED + timedelta(minutes=30)
    event = ev.spellcheck(None, "e1", timestamp=stamped.isoformat())
    said = read(Topic.SPELLCHECK_COMPLETED, ev.encode(event)).said
    assert isinstance(said, ParkedResult)
    assert said.occurred_at == stamped


@settings(deadline=None)
@given(
    topic_and_document=st.sampled_from(
        [
            (Topic.BATCH_PHASE_OUTCOME, ev.phase_outcome("b1", "nlp", "FAILED_CRITICALLY", [])),
            (Topic.SPELLCHECK_COMPLETED, ev.spellcheck(None, "e1")),
            (Topic.SPELLCHECK_COMPLETED, ev.spellcheck(None, "e1", "awaiting_spellcheck")),
            (Topic.BATCH_ESSAYS_READY, ev.ready("b1", ["e1"])),
        ]
    ),
    beyond_ms=st.integers(1, 10**12),
)
def test_any_event_stamped_beyond_the_allowed_skew_is_refused_with_its_own_reason(
    topic_and_document: tuple[str, dict[str, Any]], beyond_ms: int
) -> None:
    topic, document = topic_and_document
    stamped = RECEIVED + MAX_SKEW + timedelta(milliseconds=beyond_ms)
    late = {**document, "event_timestamp": stamped.isoformat(), "correlation_id": "c-9"}
    refused = refusal(topic, ev.encode(late))
    assert refused.reason is DeadLetterReason.TIMESTAMP_IN_FUTURE
    assert refused.correlation_id == "c-9"
    assert "3600s" in refused.detail


def test_an_event_stamped_exactly_at_the_allowed_skew_is_accepted() -> None:
    stamped = (RECEIVED + MAX_SKEW).isoformat()
    change = change_of(Topic.CJ_ASSESSMENT_FAILED, ev.cj_failed("b1", timestamp=stamped))
    assert change.outcome == StepOutcome(BatchPhaseStatus.FAILED_CRITICALLY, RECEIVED)


# --- Refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe\x00", b"", None])
def test_bytes_that_are_not_json_are_invalid_json(raw: bytes | None) -> None:
    assert refusal(Topic.SPELLCHECK_COMPLETED, raw).reason is DeadLetterReason.INVALID_JSON


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', ev.encode({"event_id": "x"})])
def test_json_of_the_wrong_shape_fails_schema_validation(raw: bytes) -> None:
    refused = refusal(Topic.BATCH_ESSAYS_READY, raw)
    assert refused.reason is DeadLetterReason.SCHEMA_VALIDATION_FAILED


def test_an_event_on_the_wrong_topic_fails_schema_validation() -> None:
    refused = refusal(Topic.BATCH_PHASE_OUTCOME, ev.encode(ev.registered("b1", ["e1"])))
    assert refused.reason is DeadLetterReason.SCHEMA_VALIDATION_FAILED
    assert "phase_name" in refused.detail


def test_a_topic_without_a_contract_fails_schema_validation() -> None:
    refused = refusal("huleedu.something.else.v1", ev.encode(ev.registered("b1", ["e1"])))
    assert refused.reason is DeadLetterReason.SCHEMA_VALIDATION_FAILED
    assert "huleedu.something.else.v1" in refused.detail


@pytest.mark.parametrize(
    ("topic", "document"),
    [
        (Topic.BATCH_ESSAYS_READY, ev.ready("b1", ["e\x001"])),
        (Topic.SPELLCHECK_COMPLETED, ev.spellcheck("b1", "e\x00")),
        (
            Topic.BATCH_PHASE_OUTCOME,
            ev.phase_outcome("b1", "spell\x1fcheck", "FAILED_CRITICALLY", []),
        ),
    ],
)
def test_ids_and_step_names_that_no_store_can_hold_are_refused(
    topic: Topic, document: dict[str, object]
) -> None:
    refused = refusal(topic, ev.encode(document))
    assert refused.reason is DeadLetterReason.SCHEMA_VALIDATION_FAILED


@pytest.mark.parametrize("document", [[], "text", None, {"event_id": "not-a-uuid"}])
def test_a_broken_envelope_fails_schema_validation(document: Any) -> None:
    refused = refusal(Topic.CJ_ASSESSMENT_COMPLETED, ev.encode(document))  # type: ignore[arg-type]
    assert refused.reason is DeadLetterReason.SCHEMA_VALIDATION_FAILED


def test_a_broken_envelope_keeps_its_correlation_id_for_the_dead_letter() -> None:
    document = {**ev.cj_failed("b1", correlation_id="c-3"), "event_id": "not-a-uuid"}
    assert refusal(Topic.CJ_ASSESSMENT_FAILED, ev.encode(document)).correlation_id == "c-3"


# --- The tolerant reader: both generations ---------------------------------------------------


@pytest.mark.parametrize("name", [SEED_SPELLCHECK, CURRENT_SPELLCHECK])
@pytest.mark.parametrize(
    "topic", [Topic.SPELLCHECK_COMPLETED, CurrentTopic.SPELLCHECK_PHASE_COMPLETED]
)
def test_either_spellcheck_shape_reads_on_either_spellcheck_topic(name: str, topic: str) -> None:
    fixture = hf.load(name)
    on_topic = read_fixture(topic, fixture.document)
    assert on_topic == read_fixture(fixture.topic, fixture.document)
    assert on_topic.said is not None


@pytest.mark.parametrize("name", [SEED_OUTCOME, CURRENT_OUTCOME])
@pytest.mark.parametrize("topic", [Topic.BATCH_PHASE_OUTCOME, CurrentTopic.BATCH_PHASE_OUTCOME])
def test_either_outcome_shape_reads_on_either_outcome_topic(name: str, topic: str) -> None:
    # The payload, not the topic, says which generation wrote it.
    fixture = hf.load(name)
    on_topic = read_fixture(topic, fixture.document)
    assert on_topic == read_fixture(fixture.topic, fixture.document)
    assert isinstance(on_topic.said, BatchChange)
    assert on_topic.said.outcome is not None


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
    event = read_fixture(fixture.topic, {**document, **correlation, **metadata})
    assert event.correlation_id == correlation.get("correlation_id")
    assert isinstance(event.said, BatchChange)
    assert event.said.outcome is not None


@settings(deadline=None)
@given(
    status=st.sampled_from(
        ["completed_successfully", "completed_with_failures", "failed_critically"]
    ),
    flips=st.lists(st.booleans(), min_size=30, max_size=30),
    name=st.sampled_from([SEED_OUTCOME, CURRENT_OUTCOME]),
)
def test_a_phase_status_is_read_in_any_case(status: str, flips: list[bool], name: str) -> None:
    spelled = "".join(c.upper() if flip else c for c, flip in zip(status, flips, strict=False))
    fixture = hf.load(name)
    said = read_fixture(fixture.topic, _with_data(fixture.document, phase_status=spelled)).said
    assert isinstance(said, BatchChange)
    assert said.outcome is not None
    assert said.outcome.status is BatchPhaseStatus.parse(status)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("processing_pipelines", None),
        ("cancelled", BatchPhaseStatus.FAILED_CRITICALLY),
        ("COMPLETED_WITH_FAILURES", BatchPhaseStatus.COMPLETED_WITH_FAILURES),
    ],
)
def test_a_current_outcome_status_still_under_way_says_nothing_terminal(
    status: str, expected: BatchPhaseStatus | None
) -> None:
    fixture = hf.load(CURRENT_OUTCOME)
    said = read_fixture(fixture.topic, _with_data(fixture.document, phase_status=status)).said
    assert isinstance(said, BatchChange)
    assert (None if said.outcome is None else said.outcome.status) is expected
    # The essays it lists count either way.
    assert {e.essay_id for e in said.essays} == {
        essay["essay_id"] for essay in fixture.at("data.processed_essays")
    }


def test_a_current_cj_with_every_essay_failed_is_a_failed_step() -> None:
    fixture = hf.load(CURRENT_CJ)
    summary = fixture.at("data.processing_summary")
    everyone = summary["successful_essay_ids"] + summary["failed_essay_ids"]
    document = _with_data(
        fixture.document,
        status="failed_critically",
        processing_summary={**summary, "successful_essay_ids": [], "failed_essay_ids": everyone},
    )
    said = read_fixture(fixture.topic, document).said
    assert isinstance(said, BatchChange)
    assert said.batch_id == fixture.at("data.entity_id")
    assert said.outcome_step == "cj_assessment"
    assert said.outcome is not None
    assert said.outcome.status is BatchPhaseStatus.FAILED_CRITICALLY
    assert said.essays == tuple(EssayResult(e, "cj_assessment", False) for e in everyone)


def test_a_current_cj_with_an_empty_summary_takes_the_producers_status() -> None:
    fixture = hf.load(CURRENT_CJ)
    empty = {"successful_essay_ids": [], "failed_essay_ids": []}
    for status, expected in [
        ("failed_critically", BatchPhaseStatus.FAILED_CRITICALLY),
        ("completed_successfully", BatchPhaseStatus.COMPLETED_SUCCESSFULLY),
    ]:
        document = _with_data(fixture.document, status=status, processing_summary=empty)
        said = read_fixture(fixture.topic, document).said
        assert isinstance(said, BatchChange)
        assert said.outcome is not None
        assert said.outcome.status is expected, status


def test_a_current_cj_without_entity_id_takes_the_batch_from_its_system_metadata() -> None:
    fixture = hf.load(CURRENT_CJ)
    said = read_fixture(fixture.topic, _with_data(fixture.document, entity_id=None)).said
    assert isinstance(said, BatchChange)
    assert said.batch_id == fixture.at("data.system_metadata.entity_id")


def test_a_current_spellcheck_with_a_blank_batch_id_is_left_to_the_rosters() -> None:
    fixture = hf.load(CURRENT_SPELLCHECK)
    said = read_fixture(fixture.topic, _with_data(fixture.document, batch_id="  ")).said
    assert isinstance(said, ParkedResult)
    assert (said.essay_id, said.step, said.succeeded) == (
        fixture.at("data.entity_id"),
        "spellcheck",
        True,
    )


@pytest.mark.parametrize("status", ["pending", "IN_PROGRESS", "queued"])
def test_a_current_spellcheck_status_under_way_is_not_terminal(status: str) -> None:
    fixture = hf.load(CURRENT_SPELLCHECK)
    said = read_fixture(fixture.topic, _with_data(fixture.document, status=status)).said
    assert isinstance(said, BatchChange)
    assert said.essays == ()


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
    with pytest.raises(UnprocessableEventError) as caught:
        read_fixture(fixture.topic, {**fixture.document, "data": data})
    assert caught.value.reason is DeadLetterReason.SCHEMA_VALIDATION_FAILED
    assert caught.value.detail.startswith(closest)
    assert f"data.{field}" in caught.value.detail
    assert caught.value.correlation_id == fixture.at("correlation_id")


def test_a_payload_with_bad_fields_of_its_own_format_is_reported_as_that_format() -> None:
    # A seed-era spellcheck result with two fields of the wrong type has more errors as seed
    # era (two) than as a current result (its `entity_id` missing): its own keys say which it
    # is, and that is the format an operator must be told about.
    fixture = hf.load(SEED_SPELLCHECK)
    bad = _with_data(fixture.document, corrections_made="many", storage_metadata="none")
    with pytest.raises(UnprocessableEventError) as caught:
        read_fixture(fixture.topic, bad)
    assert caught.value.detail.startswith("SpellcheckResultDataV1 (seed-era)")
    assert "data.corrections_made" in caught.value.detail
    assert "data.storage_metadata" in caught.value.detail


def _known_fields(topic: str) -> set[str]:
    return {field for fmt in FORMATS_BY_TOPIC[topic] for field in fmt.model.model_fields}


@settings(deadline=None)
@given(
    name=st.sampled_from(hf.fixture_names()),
    extras=st.dictionaries(st.text(min_size=1, max_size=12), st.integers() | st.text(), max_size=4),
)
def test_unknown_payload_fields_never_change_what_an_event_says(
    name: str, extras: dict[str, Any]
) -> None:
    fixture = hf.load(name)
    known = _known_fields(fixture.topic) | set(fixture.document["data"])
    extras = {key: value for key, value in extras.items() if key not in known}
    document = copy.deepcopy(fixture.document)
    document["data"].update(extras)
    received = datetime.now(UTC)
    assert translate(fixture.topic, json.dumps(document).encode(), received, MAX_SKEW) == translate(
        fixture.topic, fixture.wire(), received, MAX_SKEW
    )


@settings(deadline=None)
@given(name=st.sampled_from(hf.fixture_names()), data=st.data())
def test_dropping_a_field_either_still_reads_or_names_it(name: str, data: st.DataObject) -> None:
    fixture = hf.load(name)
    field = data.draw(st.sampled_from(sorted(fixture.document["data"])))
    document = copy.deepcopy(fixture.document)
    del document["data"][field]
    refused = _refused(fixture.topic, document)
    assert refused is None or (
        refused.reason is DeadLetterReason.SCHEMA_VALIDATION_FAILED
        and f"data.{field}" in refused.detail
    )


def _refused(topic: str, document: dict[str, Any]) -> UnprocessableEventError | None:
    try:
        read_fixture(topic, document)
    except UnprocessableEventError as exc:
        return exc
    return None


def test_rankings_and_summaries_skip_blank_essay_ids_as_the_original_did() -> None:
    seed = hf.load(SEED_CJ)
    rankings = [*seed.at("data.rankings"), {"rank": 4, "els_essay_id": "", "score": None}]
    rankings.append({"rank": 5, "els_essay_id": None, "score": None})
    said = read_fixture(seed.topic, _with_data(seed.document, rankings=rankings)).said
    assert isinstance(said, BatchChange)
    assert [e.essay_id for e in said.essays] == [r["els_essay_id"] for r in rankings[:3]]

    current = hf.load(CURRENT_CJ)
    summary = current.at("data.processing_summary")
    padded = {**summary, "failed_essay_ids": [*summary["failed_essay_ids"], " "]}
    said = read_fixture(current.topic, _with_data(current.document, processing_summary=padded)).said
    assert isinstance(said, BatchChange)
    assert [e.essay_id for e in said.essays if not e.succeeded] == summary["failed_essay_ids"]


def test_an_essay_id_with_control_characters_is_still_refused() -> None:
    seed = hf.load(SEED_CJ)
    rankings = [{"rank": 1, "els_essay_id": "e\x001", "score": 1.0}]
    with pytest.raises(UnprocessableEventError):
        read_fixture(seed.topic, _with_data(seed.document, rankings=rankings))


def test_an_event_id_is_kept_in_canonical_form() -> None:
    upper = str(uuid.uuid4()).upper()
    event = read(Topic.BATCH_ESSAYS_READY, ev.encode(ev.ready("b1", ["e1"], event_id=upper)))
    assert event.event_id == upper.lower()
    assert isinstance(event.said, BatchChange)
    assert event.said.event_id == upper.lower()


# --- A format's claim, walked in one plain loop, counts as the plain definition does ----------

KEYS = st.sampled_from(["a", "b", "data", "entity", "status"])
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=3))
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
PATHS = st.lists(KEYS, min_size=1, max_size=3).map(".".join)


def _plain_claim(paths: list[str], payload: Any) -> int:
    def has(node: Any, keys: list[str]) -> bool:
        for key in keys:
            if not isinstance(node, Mapping) or key not in node:
                return False
            node = node[key]
        return True

    return sum(1 for path in paths if has(payload, path.split(".")))


@given(st.lists(PATHS, min_size=1, max_size=5), st.dictionaries(KEYS, JSON, max_size=5))
def test_a_claim_counts_the_paths_the_payload_has(paths: list[str], payload: Any) -> None:
    assert has_paths(*paths)(payload) == _plain_claim(paths, payload)
