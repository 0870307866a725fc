"""One consumed message becomes one batch change, or an unprocessable error with its DLQ reason."""

from datetime import UTC, datetime

import pytest

from batch_conductor_service.consumer.translation import (
    CONSUMED_TOPICS,
    UnplacedEvent,
    UnprocessableEventError,
    translate,
)
from batch_conductor_service.domain.batch_state import (
    BatchOutcome,
    EssayOutcome,
    EssayStepOutcome,
    RosterSource,
)
from batch_conductor_service.domain.placement import UnplacedResult
from common_core.enums import BatchPhaseStatus
from common_core.events import DeadLetterReason
from common_core.topics import CurrentTopic, Topic
from tests.support import event_factory as ev

AT = datetime(2025, 6, 21, 12, 0, 0, 123456, tzinfo=UTC)


def test_the_contract_topics_of_both_generations_are_consumed() -> None:
    seed_era = {t.value for t in Topic if t is not Topic.PIPELINE_RESOLUTION}
    assert set(CONSUMED_TOPICS) == seed_era | {t.value for t in CurrentTopic}


def test_registered_sets_a_registered_roster() -> None:
    event = ev.registered("b1", ["e1", "e2"], correlation_id="c-1")
    translated = translate(Topic.BATCH_ESSAYS_REGISTERED, ev.encode(event))
    change = translated.change
    assert (change.batch_id, change.event_id, change.occurred_at) == ("b1", event["event_id"], AT)
    assert change.roster == {"e1", "e2"}
    assert change.roster_source is RosterSource.REGISTERED
    assert translated.correlation_id == "c-1"


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_correlation_id_is_read_as_absent(blank: str) -> None:
    # Found by the hostile-translation property test: "" went on as a correlation id.
    event = ev.registered("b1", ["e1"], correlation_id=blank)
    assert translate(Topic.BATCH_ESSAYS_REGISTERED, ev.encode(event)).correlation_id is None


def test_ready_sets_a_ready_roster() -> None:
    change = translate(Topic.BATCH_ESSAYS_READY, ev.encode(ev.ready("b1", ["e2"]))).change
    assert change.roster == {"e2"}
    assert change.roster_source is RosterSource.READY


@pytest.mark.parametrize(
    ("status", "outcome"),
    [("spellchecked_success", EssayOutcome.SUCCEEDED), ("spellcheck_failed", EssayOutcome.FAILED)],
)
def test_terminal_spellcheck_status_records_the_essay_outcome(
    status: str, outcome: EssayOutcome
) -> None:
    raw = ev.encode(ev.spellcheck("b1", "e1", status))
    change = translate(Topic.SPELLCHECK_COMPLETED, raw).change
    assert change.batch_id == "b1"
    assert change.essay_outcomes == (EssayStepOutcome("e1", "spellcheck", outcome),)


def test_other_spellcheck_status_is_a_valid_event_without_effect() -> None:
    raw = ev.encode(ev.spellcheck("b1", "e1", "awaiting_spellcheck"))
    change = translate(Topic.SPELLCHECK_COMPLETED, raw).change
    assert change.batch_id == "b1"
    assert change.essay_outcomes == ()
    assert change.batch_outcome is None


def test_spellcheck_without_parent_id_uses_the_system_metadata_parent() -> None:
    raw = ev.encode(ev.spellcheck(None, "e1", metadata_parent="b9"))
    assert translate(Topic.SPELLCHECK_COMPLETED, raw).change.batch_id == "b9"


def test_spellcheck_without_any_batch_id_is_left_for_the_roster_to_place() -> None:
    event = ev.spellcheck(None, "e1", metadata_parent=None, correlation_id="c-7")
    translated = translate(Topic.SPELLCHECK_COMPLETED, ev.encode(event))
    assert isinstance(translated, UnplacedEvent)
    assert translated.correlation_id == "c-7"
    assert translated.result == UnplacedResult(
        event["event_id"], "e1", "spellcheck", EssayOutcome.SUCCEEDED, AT
    )


def test_a_result_without_batch_and_without_terminal_status_has_nothing_to_place() -> None:
    event = ev.spellcheck(None, "e1", "awaiting_spellcheck", metadata_parent=None)
    translated = translate(Topic.SPELLCHECK_COMPLETED, ev.encode(event))
    assert isinstance(translated, UnplacedEvent)
    assert translated.result is None


def test_cj_completed_records_every_ranked_essay_and_the_batch_completion() -> None:
    raw = ev.encode(ev.cj_completed("b1", ["e1", "e2"]))
    change = translate(Topic.CJ_ASSESSMENT_COMPLETED, raw).change
    assert change.batch_id == "b1"
    assert set(change.essay_outcomes) == {
        EssayStepOutcome("e1", "cj_assessment", EssayOutcome.SUCCEEDED),
        EssayStepOutcome("e2", "cj_assessment", EssayOutcome.SUCCEEDED),
    }
    assert change.batch_outcome_step == "cj_assessment"
    assert change.batch_outcome == BatchOutcome(BatchPhaseStatus.COMPLETED_SUCCESSFULLY, AT)


def test_cj_failed_records_a_critical_batch_failure() -> None:
    change = translate(Topic.CJ_ASSESSMENT_FAILED, ev.encode(ev.cj_failed("b1"))).change
    assert change.batch_outcome_step == "cj_assessment"
    assert change.batch_outcome == BatchOutcome(BatchPhaseStatus.FAILED_CRITICALLY, AT)
    assert change.essay_outcomes == ()


def test_phase_outcome_records_batch_status_and_each_essay() -> None:
    event = ev.phase_outcome("b1", "nlp", "completed_with_failures", ["e1", "e2"], ["e3"])
    change = translate(Topic.BATCH_PHASE_OUTCOME, ev.encode(event)).change
    assert change.batch_outcome_step == "nlp"
    assert change.batch_outcome == BatchOutcome(BatchPhaseStatus.COMPLETED_WITH_FAILURES, AT)
    assert set(change.essay_outcomes) == {
        EssayStepOutcome("e1", "nlp", EssayOutcome.SUCCEEDED),
        EssayStepOutcome("e2", "nlp", EssayOutcome.SUCCEEDED),
        EssayStepOutcome("e3", "nlp", EssayOutcome.FAILED),
    }


def test_naive_event_timestamp_becomes_utc_aware_occurred_at() -> None:
    raw = ev.encode(ev.cj_failed("b1", timestamp="2025-06-21T12:00:00"))
    assert translate(Topic.CJ_ASSESSMENT_FAILED, raw).change.occurred_at == datetime(
        2025, 6, 21, 12, tzinfo=UTC
    )


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe\x00", b"", None])
def test_bytes_that_are_not_json_are_invalid_json(raw: bytes | None) -> None:
    with pytest.raises(UnprocessableEventError) as caught:
        translate(Topic.SPELLCHECK_COMPLETED, raw)
    assert caught.value.reason is DeadLetterReason.INVALID_JSON


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', ev.encode({"event_id": "x"})])
def test_json_of_the_wrong_shape_fails_schema_validation(raw: bytes) -> None:
    with pytest.raises(UnprocessableEventError) as caught:
        translate(Topic.BATCH_ESSAYS_READY, raw)
    assert caught.value.reason is DeadLetterReason.SCHEMA_VALIDATION_FAILED


def test_an_event_on_the_wrong_topic_fails_schema_validation() -> None:
    with pytest.raises(UnprocessableEventError) as caught:
        translate(Topic.BATCH_PHASE_OUTCOME, ev.encode(ev.registered("b1", ["e1"])))
    assert caught.value.reason is DeadLetterReason.SCHEMA_VALIDATION_FAILED
    assert "phase_name" in caught.value.detail


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
def test_ids_and_step_names_that_no_store_can_hold_are_dead_lettered(
    topic: Topic, document: dict[str, object]
) -> None:
    with pytest.raises(UnprocessableEventError) as caught:
        translate(topic, ev.encode(document))
    assert caught.value.reason is DeadLetterReason.SCHEMA_VALIDATION_FAILED
