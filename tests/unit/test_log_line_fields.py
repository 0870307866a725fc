"""Our own lines carry the same fields as the stdlib's (context, level, time, service, logger),
added in one processor; the time is formatted once a second and must still be exact."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from huleedu_service_libs import logging_utils
from huleedu_service_libs.logging_utils import configure_logging, get_logger

pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.mark.parametrize(
    ("method", "level"),
    [("info", "info"), ("warning", "warning"), ("error", "error"), ("exception", "error")],
)
def test_a_line_carries_context_level_time_service_and_logger(
    capsys: pytest.CaptureFixture[str], method: str, level: str
) -> None:
    configure_logging("INFO", "bcs")
    capsys.readouterr()
    before = datetime.now(UTC)
    with structlog.contextvars.bound_contextvars(correlation_id="corr-1"):
        getattr(get_logger("bcs.test"), method)("something_happened", batch_id="b1")
    after = datetime.now(UTC)
    [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    stamped = datetime.strptime(line.pop("timestamp"), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before - timedelta(microseconds=1) <= stamped <= after
    assert line == {
        "event": "something_happened",
        "batch_id": "b1",
        "correlation_id": "corr-1",
        "level": level,
        "service": "bcs",
        "logger": "bcs.test",
    }


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_the_time_of_a_line_is_exact_to_the_microsecond(moment: float) -> None:
    fields = logging_utils._LineFields(None)
    # Within a second, across one, and back: the cached part to the second must follow.
    for now in (moment, moment + 0.4, moment + 1.3, max(0.0, moment - 7.9)):
        stamped = datetime.strptime(fields.stamp(now), "%Y-%m-%dT%H:%M:%S.%fZ")
        expected = datetime.fromtimestamp(now, UTC).replace(tzinfo=None)
        assert abs(stamped - expected) <= timedelta(microseconds=1)
