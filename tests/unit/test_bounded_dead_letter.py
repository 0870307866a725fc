"""A dead-letter record always fits its size limit and says what it left out."""

import hashlib
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from batch_conductor_service.dead_letter.bounded_record import bounded_record
from common_core.events import DeadLetterRecord
from tests.support.hypothesis_profiles import examples

TOPIC = "huleedu.els.batch.essays.ready.v1"


def build(payload: bytes, max_bytes: int, **overrides: object) -> bytes:
    fields: dict[str, object] = {
        "original_topic": TOPIC,
        "payload": payload,
        "reason": "invalid_json",
        "error": "unexpected character",
        "failing_service": "batch_conductor_service",
        "failed_at": datetime(2026, 1, 1, tzinfo=UTC),
        "partition": 3,
        "offset": 41,
        "correlation_id": "corr-1",
        "max_bytes": max_bytes,
        **overrides,
    }
    return bounded_record(**fields)  # type: ignore[arg-type]


def test_a_payload_that_fits_travels_whole() -> None:
    record = DeadLetterRecord.model_validate_json(build(b'{"a": 1}', 4096))
    assert record.payload_bytes() == b'{"a": 1}'
    assert not record.original_payload_truncated
    assert record.original_payload_length == 8
    assert record.original_payload_sha256 == hashlib.sha256(b'{"a": 1}').hexdigest()


def test_control_bytes_that_escape_six_fold_are_cut_to_fit() -> None:
    payload = b"\x01" * 200_000
    value = build(payload, 512 * 1024)
    assert len(value) <= 512 * 1024
    record = DeadLetterRecord.model_validate_json(value)
    assert record.original_payload_truncated
    assert record.original_payload_length == 200_000
    assert payload.startswith(record.payload_bytes())
    # Most of the budget is used: the prefix is not needlessly short.
    assert len(value) > 500 * 1024


def test_huge_errors_and_correlation_ids_are_clipped() -> None:
    value = build(b"x", 8192, error="e" * 100_000, correlation_id="c" * 100_000)
    assert len(value) <= 8192
    record = DeadLetterRecord.model_validate_json(value)
    assert len(record.error) < 2100
    assert record.correlation_id is not None
    assert len(record.correlation_id) < 300


@settings(max_examples=examples(300))
@given(
    payload=st.one_of(
        st.binary(max_size=20_000),
        st.text(max_size=5_000).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    max_bytes=st.integers(min_value=4096, max_value=16_384),
)
def test_any_payload_gives_a_record_within_the_limit_holding_a_prefix(
    payload: bytes, max_bytes: int
) -> None:
    value = build(payload, max_bytes)
    assert len(value) <= max_bytes
    record = DeadLetterRecord.model_validate_json(value)
    assert payload.startswith(record.payload_bytes())
    assert record.original_payload_truncated == (record.payload_bytes() != payload)
    assert record.original_payload_length == len(payload)
    assert record.original_payload_sha256 == hashlib.sha256(payload).hexdigest()
