"""The event contracts accept the platform's examples (docs/events.md), tolerate extras, reject
what BCS needs."""

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from common_core.enums import BatchPhaseStatus
from common_core.events import (
    BatchEssaysReady,
    BatchEssaysRegistered,
    CJAssessmentCompletedV1,
    CJAssessmentFailedV1,
    ContractModel,
    DeadLetterRecord,
    ELSBatchPhaseOutcomeV1,
    EventEnvelope,
    SpellcheckResultDataV1,
)
from tests.support import event_factory as ev

EXAMPLES: list[tuple[type[ContractModel], dict[str, Any]]] = [
    (SpellcheckResultDataV1, ev.spellcheck("b1", "e1")),
    (CJAssessmentCompletedV1, ev.cj_completed("b1", ["e1", "e2"])),
    (CJAssessmentFailedV1, ev.cj_failed("b1")),
    (
        ELSBatchPhaseOutcomeV1,
        ev.phase_outcome("batch-123", "spellcheck", "COMPLETED_WITH_FAILURES", ["e1"], ["e3"]),
    ),
    (BatchEssaysRegistered, ev.registered("b1", ["e1", "e2"])),
    (BatchEssaysReady, ev.ready("b1", ["e1"])),
]


@pytest.mark.parametrize(("model", "document"), EXAMPLES, ids=lambda x: getattr(x, "__name__", ""))
def test_each_contract_example_round_trips(
    model: type[ContractModel], document: dict[str, Any]
) -> None:
    parsed = EventEnvelope[model].model_validate(document)  # type: ignore[valid-type]
    again = EventEnvelope[model].model_validate(parsed.model_dump(mode="json"))  # type: ignore[valid-type]
    assert again == parsed
    assert parsed.event_id == document["event_id"]


@pytest.mark.parametrize(("model", "document"), EXAMPLES, ids=lambda x: getattr(x, "__name__", ""))
def test_extra_fields_are_tolerated_everywhere(
    model: type[ContractModel], document: dict[str, Any]
) -> None:
    document = {**document, "new_envelope_field": 1, "data": {**document["data"], "new": [1]}}
    EventEnvelope[model].model_validate(document)  # type: ignore[valid-type]


def _without(document: dict[str, Any], field: str) -> dict[str, Any]:
    data = dict(document["data"])
    del data[field]
    return {**document, "data": data}


@pytest.mark.parametrize(
    ("model", "document"),
    [
        (SpellcheckResultDataV1, _without(ev.spellcheck("b1", "e1"), "status")),
        (SpellcheckResultDataV1, _without(ev.spellcheck("b1", "e1"), "entity_ref")),
        (CJAssessmentCompletedV1, _without(ev.cj_completed("b1", ["e1"]), "entity_ref")),
        (CJAssessmentFailedV1, _without(ev.cj_failed("b1"), "entity_ref")),
        (ELSBatchPhaseOutcomeV1, _without(ev.phase_outcome("b", "nlp", "X", []), "phase_status")),
        (ELSBatchPhaseOutcomeV1, ev.phase_outcome("b", "nlp", "NEARLY_DONE", [])),
        (BatchEssaysRegistered, _without(ev.registered("b1", ["e1"]), "essay_ids")),
        (BatchEssaysReady, _without(ev.ready("b1", ["e1"]), "ready_essays")),
        (BatchEssaysReady, ev.ready("   ", ["e1"])),
        (BatchEssaysReady, ev.ready("b1", ["e\x001"])),
        (BatchEssaysRegistered, ev.registered("b\x1f1", ["e1"])),
        (SpellcheckResultDataV1, ev.spellcheck("b\n1", "e1")),
        (ELSBatchPhaseOutcomeV1, ev.phase_outcome("b", "nlp\x1fx", "COMPLETED_SUCCESSFULLY", [])),
        (ELSBatchPhaseOutcomeV1, ev.phase_outcome("b", "AI feedback", "FAILED_CRITICALLY", [])),
    ],
)
def test_payload_lacking_what_bcs_needs_is_rejected(
    model: type[ContractModel], document: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        EventEnvelope[model].model_validate(document)  # type: ignore[valid-type]


@pytest.mark.parametrize("field", ["event_id", "event_timestamp", "data"])
def test_envelope_without_a_required_field_is_rejected(field: str) -> None:
    document = ev.registered("b1", ["e1"])
    del document[field]
    with pytest.raises(ValidationError):
        EventEnvelope[BatchEssaysRegistered].model_validate(document)


def test_event_id_must_be_a_uuid_and_is_kept_in_canonical_form() -> None:
    upper = "7B1D4A52-3C35-4F0E-9A3E-0D8F4C2B9E11"
    parsed = EventEnvelope[BatchEssaysRegistered].model_validate(
        ev.registered("b1", ["e1"], event_id=upper)
    )
    assert parsed.event_id == upper.lower()
    with pytest.raises(ValidationError):
        EventEnvelope[BatchEssaysRegistered].model_validate(
            ev.registered("b1", ["e1"], event_id="not-a-uuid")
        )


def test_naive_timestamps_are_utc_and_offsets_are_converted() -> None:
    naive = EventEnvelope[BatchEssaysRegistered].model_validate(
        ev.registered("b1", ["e1"], timestamp="2025-06-21T12:00:00")
    )
    offset = EventEnvelope[BatchEssaysRegistered].model_validate(
        ev.registered("b1", ["e1"], timestamp="2025-06-21T14:00:00+02:00")
    )
    assert naive.event_timestamp == datetime(2025, 6, 21, 12, tzinfo=UTC)
    assert offset.event_timestamp.utcoffset() == naive.event_timestamp.utcoffset()
    assert offset.event_timestamp == naive.event_timestamp


def test_phase_status_is_compared_case_insensitively() -> None:
    parsed = EventEnvelope[ELSBatchPhaseOutcomeV1].model_validate(
        ev.phase_outcome("b", "nlp", "completed_successfully", ["e1"])
    )
    assert parsed.data.phase_status is BatchPhaseStatus.COMPLETED_SUCCESSFULLY


def test_spellcheck_batch_id_falls_back_to_system_metadata_then_none() -> None:
    direct = ev.spellcheck("b1", "e1", metadata_parent="other")
    fallback = ev.spellcheck(None, "e1", metadata_parent="b2")
    neither = ev.spellcheck("  ", "e1", metadata_parent=None)
    parse = EventEnvelope[SpellcheckResultDataV1].model_validate
    assert parse(direct).data.batch_id == "b1"
    assert parse(fallback).data.batch_id == "b2"
    assert parse(neither).data.batch_id is None


def test_dead_letter_record_carries_bytes_that_are_not_utf8_as_base64() -> None:
    raw = b"\xff\xfe not utf-8"
    payload, encoding = DeadLetterRecord.encode_payload(raw)
    record = DeadLetterRecord(
        original_payload=payload,
        original_payload_encoding=encoding,
        original_topic="t",
        reason="invalid_json",
        error="bad",
        failing_service="bcs",
        failed_at=datetime.now(UTC),
    )
    again = DeadLetterRecord.model_validate_json(record.model_dump_json())
    assert again.original_payload_encoding == "base64"
    assert again.payload_bytes() == raw


def test_cj_completed_without_rankings_still_says_the_step_finished() -> None:
    document = _without(ev.cj_completed("b1", ["e1"]), "rankings")
    envelope = EventEnvelope[CJAssessmentCompletedV1].model_validate(document)
    assert envelope.data.rankings == []


def test_phase_name_is_read_in_the_spelling_of_the_graph() -> None:
    document = ev.phase_outcome("b1", " Spellcheck ", "COMPLETED_SUCCESSFULLY", [])
    envelope = EventEnvelope[ELSBatchPhaseOutcomeV1].model_validate(document)
    assert envelope.data.phase_name == "spellcheck"
