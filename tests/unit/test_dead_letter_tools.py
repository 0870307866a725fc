"""Selecting and planning dead-letter replays: pure, no broker."""

import hashlib
import re
from datetime import UTC, datetime

from hypothesis import assume, given
from hypothesis import strategies as st

from batch_conductor_service.cli.dlq_commands import entry_as_line, replay_line
from batch_conductor_service.dead_letter.bounded_record import bounded_record
from batch_conductor_service.dead_letter.reader import (
    DeadLetterEntry,
    Selection,
    parse_entry,
    select,
)
from batch_conductor_service.dead_letter.replay import plan_replay, replay_headers
from common_core.events import DeadLetterRecord

TOPIC = "huleedu.essay.spellcheck.completed.v1"
FAILED_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def record_bytes(payload: bytes, reason: str = "invalid_json", topic: str = TOPIC) -> bytes:
    text, encoding = DeadLetterRecord.encode_payload(payload)
    return (
        DeadLetterRecord(
            original_payload=text,
            original_payload_encoding=encoding,
            original_topic=topic,
            original_partition=2,
            original_offset=41,
            reason=reason,
            error="Expecting value:\n line 1",
            failing_service="batch_conductor_service",
            failed_at=FAILED_AT,
        )
        .model_dump_json()
        .encode()
    )


def entry(offset: int, reason: str = "invalid_json", partition: int = 0) -> DeadLetterEntry:
    return parse_entry(partition, offset, 0, record_bytes(b"x", reason))


def test_a_record_that_is_not_a_dead_letter_record_is_listed_with_the_problem() -> None:
    parsed = parse_entry(0, 7, 1_700_000_000_000, b"not json")
    assert parsed.record is None
    assert parsed.problem is not None
    assert parsed.problem.startswith("not a dead-letter record")
    assert parsed.reason is None
    (item,) = plan_replay([parsed], TOPIC)
    assert item.payload is None
    assert replay_line(item, dry_run=True).startswith("skip offset 7: not a dead-letter record")


def test_selection_by_reason_partition_and_inclusive_offsets() -> None:
    entries = [entry(0), entry(1, "unplaceable_event"), entry(2), entry(3), entry(1, partition=1)]
    chosen = select(entries, Selection(frozenset({"invalid_json"}), 1, 2, partition=0))
    assert [(e.partition, e.offset) for e in chosen] == [(0, 2)]
    assert len(select(entries, Selection())) == 5
    assert [e.offset for e in select(entries, Selection(to_offset=1, partition=0))] == [0, 1]


@given(st.binary(max_size=200))
def test_replay_sends_back_exactly_the_original_bytes(payload: bytes) -> None:
    (item,) = plan_replay([parse_entry(0, 0, None, record_bytes(payload))], TOPIC)
    assert item.payload == payload


def test_a_record_of_another_topic_is_not_replayed_to_this_one() -> None:
    other = parse_entry(0, 0, None, record_bytes(b"{}", topic="huleedu.other.v1"))
    (item,) = plan_replay([other], TOPIC)
    assert item.payload is None
    assert item.skipped == "its original topic is huleedu.other.v1"


def test_a_listed_line_shows_offset_time_reason_origin_and_the_error_on_one_line() -> None:
    line = entry_as_line(entry(5, partition=3))
    assert line.split()[:5] == ["3:5", "2026-03-01", "09:00:00", "invalid_json", "2:41"]
    assert line.endswith("Expecting value: line 1")


def test_a_record_holding_only_a_prefix_of_its_payload_is_not_replayed() -> None:
    record = DeadLetterRecord.model_validate_json(record_bytes(b'{"event_id": "e'))
    clipped = record.model_copy(
        update={
            "original_payload_truncated": True,
            "original_payload_length": 2_000_000,
            "original_payload_sha256": "ab" * 32,
        }
    )
    (item,) = plan_replay([parse_entry(0, 4, None, clipped.model_dump_json().encode())], TOPIC)
    assert item.payload is None
    assert item.skipped == (
        f"the record holds only a prefix of the payload (2000000 bytes, sha256 {'ab' * 32}); "
        "replay the original from its producer"
    )


@given(st.binary(max_size=200))
def test_a_record_as_the_service_writes_it_replays_the_original_bytes(payload: bytes) -> None:
    written = bounded_record(
        original_topic=TOPIC,
        payload=payload,
        reason="invalid_json",
        error="e",
        failing_service="batch_conductor_service",
        failed_at=FAILED_AT,
        partition=0,
        offset=1,
        correlation_id=None,
        max_bytes=64 * 1024,
    )
    (item,) = plan_replay([parse_entry(0, 0, None, written)], TOPIC)
    assert item.payload == payload


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_a_payload_that_does_not_match_its_sha256_is_listed_so_and_not_replayed(
    original: bytes, altered: bytes
) -> None:
    assume(original != altered)
    digest = hashlib.sha256(original).hexdigest()
    record = DeadLetterRecord.model_validate_json(record_bytes(altered))
    changed = record.model_copy(update={"original_payload_sha256": digest})
    entry = parse_entry(0, 3, None, changed.model_dump_json().encode())
    (item,) = plan_replay([entry], TOPIC)
    assert item.payload is None
    assert item.skipped == (
        f"its payload does not match its original_payload_sha256 {digest}: it is not the "
        "message that failed"
    )
    assert replay_line(item, dry_run=True) == f"skip offset 3: {item.skipped}"
    assert entry_as_line(entry).endswith(
        "Expecting value: line 1 [payload does not match its sha256: not replayable]"
    )


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def traced_entry(trace_context: dict[str, str] | None) -> DeadLetterEntry:
    record = DeadLetterRecord.model_validate_json(record_bytes(b"x")).model_copy(
        update={"trace_context": trace_context}
    )
    return parse_entry(0, 9, 0, record.model_dump_json().encode())


def test_a_replayed_message_carries_its_records_trace_context_as_headers() -> None:
    (item,) = plan_replay([traced_entry({"traceparent": TRACEPARENT, "tracestate": "a=1"})], TOPIC)
    assert replay_headers(TOPIC, item) == [
        ("bcs-replay-of", f"{TOPIC}.DLQ/0/9".encode()),
        ("traceparent", TRACEPARENT.encode()),
        ("tracestate", b"a=1"),
    ]


@given(
    st.dictionaries(
        st.sampled_from(["traceparent", "tracestate", "other"]), st.text(max_size=300), max_size=3
    )
)
def test_a_record_whose_trace_context_is_not_valid_w3c_replays_without_it(
    trace_context: dict[str, str],
) -> None:
    assume(trace_context.get("traceparent") != TRACEPARENT)
    (item,) = plan_replay([traced_entry(trace_context or None)], TOPIC)
    headers = replay_headers(TOPIC, item)
    assert headers[0][0] == "bcs-replay-of"
    names = [name for name, _ in headers[1:]]
    assert names in ([], ["traceparent"], ["traceparent", "tracestate"])
    for name, value in headers[1:2]:
        # Only what the W3C propagator writes back goes out, never the record's text as is.
        assert re.fullmatch(rb"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", value), (name, value)
