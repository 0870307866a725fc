"""Ids, names and times are bounded where they come in: a refused one is a classified rejection
(a dead-letter reason on Kafka, a 400 over HTTP), never a crash, a stall or a 500."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from quart.typing import TestClientProtocol as Client
from structlog.testing import capture_logs

from batch_conductor_service.consumer.translation import UnprocessableEventError, translate
from batch_conductor_service.domain.batch_state import BatchChange
from common_core.topics import Topic
from tests.support import event_factory as ev
from tests.support.consumed_message import msg
from tests.support.pipeline_harness import memory_harness

PHASE = Topic.BATCH_PHASE_OUTCOME.value
TOO_LONG = "x" * 256
# Received well after the event_factory's stamps, within the default allowed skew.
RECEIVED = datetime(2025, 6, 21, 13, tzinfo=UTC)
MAX_SKEW = timedelta(hours=1)


def phase(**data: Any) -> dict[str, Any]:
    document = ev.phase_outcome("b1", "spellcheck", "COMPLETED_SUCCESSFULLY", ["e1"], [])
    document["data"].update(data)
    return document


@pytest.mark.parametrize(
    "document",
    [
        phase(batch_id=TOO_LONG),
        phase(batch_id="b\x00"),
        phase(batch_id="b\x85c"),
        phase(batch_id="b\ud800"),
        phase(phase_name="s" * 256),
        phase(failed_essay_ids=["e\x07"]),
        phase(failed_essay_ids=[TOO_LONG]),
        {**phase(), "correlation_id": TOO_LONG},
        {**phase(), "correlation_id": "c\n"},
        {**phase(), "event_timestamp": "9999-12-31T23:59:59-10:00"},
        {**phase(), "event_timestamp": "0001-01-01T00:00:00+10:00"},
    ],
    ids=[
        "batch-id-256",
        "batch-id-nul",
        "batch-id-c1",
        "batch-id-surrogate",
        "phase-name-256",
        "essay-id-bell",
        "essay-id-256",
        "correlation-id-256",
        "correlation-id-newline",
        "timestamp-overflows-west",
        "timestamp-overflows-east",
    ],
)
def test_an_out_of_bounds_field_is_a_schema_validation_failure(document: dict[str, Any]) -> None:
    # json, not orjson: orjson refuses to write a lone surrogate, JSON carries it as an escape.
    with pytest.raises(UnprocessableEventError) as caught:
        translate(PHASE, json.dumps(document).encode(), RECEIVED, MAX_SKEW)
    # A lone surrogate is already refused by the JSON parser.
    assert caught.value.reason.value in {"schema_validation_failed", "invalid_json"}


def test_the_longest_accepted_ids_are_read() -> None:
    longest = "y" * 255
    document = phase(batch_id=longest, failed_essay_ids=[longest])
    said = translate(PHASE, ev.encode(document), RECEIVED, MAX_SKEW).said
    assert isinstance(said, BatchChange)
    assert said.batch_id == longest


async def test_an_event_stamped_beyond_the_allowed_skew_is_dead_lettered_with_its_own_reason() -> (
    None
):
    harness = memory_harness(clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    in_time = {**phase(), "event_timestamp": "2026-01-01T00:59:00Z"}
    future = {**phase(batch_id="b2"), "event_timestamp": "2999-01-01T00:00:00Z"}

    await harness.handle([msg(PHASE, 0, in_time), msg(PHASE, 1, future)])

    [record] = harness.dead_letters.sent
    assert (record.reason, record.offset) == ("timestamp_in_future", 1)
    assert "3600s" in record.error
    assert (await harness.counts("b1")).latest
    assert (await harness.counts("b2")).is_empty


DEFINE = "/internal/v1/pipelines/define"


@pytest.mark.parametrize(
    ("batch_id", "status"),
    [
        ("b\x00", 400),
        ("b\x1b[31m", 400),
        (TOO_LONG, 400),
        ("}x", 200),
        ("{x}", 200),
        ("y" * 255, 200),
    ],
    ids=["nul", "escape", "256-chars", "leading-brace", "braces", "255-chars"],
)
async def test_define_refuses_an_out_of_bounds_batch_id_with_a_400_never_a_500(
    client: Client, batch_id: str, status: int
) -> None:
    response = await client.post(DEFINE, json={"batch_id": batch_id, "requested_pipeline": "nlp"})
    assert response.status_code == status
    if status == 400:
        assert (await response.get_json())["error"] == "validation_failed"


async def test_define_refuses_a_pipeline_name_with_control_characters(client: Client) -> None:
    response = await client.post(DEFINE, json={"batch_id": "b", "requested_pipeline": "nlp\x00"})
    assert response.status_code == 400


async def test_the_per_fetch_log_line_stays_small_whatever_the_ids_hold() -> None:
    # Twenty accepted events with the longest correlation id, twenty refused ones with 1 MB ids.
    good = [
        msg(PHASE, i, {**phase(batch_id=f"b{i}"), "correlation_id": "c" * 255}) for i in range(20)
    ]
    bad = [msg(PHASE, 20 + i, {**phase(), "correlation_id": "x" * 1_000_000}) for i in range(20)]
    harness = memory_harness(clock=lambda: RECEIVED)

    with capture_logs() as logs:
        await harness.handle([*good, *bad])

    [line] = [entry for entry in logs if entry["event"] == "event_batch_stored"]
    assert len(orjson.dumps(line, default=str)) < 8_000
    assert all(len(orjson.dumps(entry, default=str)) < 8_000 for entry in logs)
    assert len(harness.dead_letters.sent) == 20
