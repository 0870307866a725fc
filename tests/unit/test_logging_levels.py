"""logs_at: a loop may skip building lines of a level the configuration drops, and only those."""

import json

import pytest
from structlog.testing import capture_logs

from huleedu_service_libs.logging_utils import configure_logging, get_logger, logs_at

pytestmark = pytest.mark.usefixtures("restore_logging")


def test_a_level_under_the_configured_one_is_not_logged() -> None:
    configure_logging("INFO")
    assert not logs_at("debug")
    assert logs_at("info")
    assert logs_at("warning")
    assert logs_at("exception")


def test_debug_is_logged_when_configured() -> None:
    configure_logging("DEBUG")
    assert logs_at("debug")


def test_captured_logs_see_every_level_whatever_was_configured() -> None:
    configure_logging("WARNING")
    with capture_logs() as logs:
        assert logs_at("debug")
        get_logger("t").debug("kept")
    assert [line["event"] for line in logs] == ["kept"]


def test_logs_at_agrees_with_what_is_written(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    capsys.readouterr()
    logger = get_logger("t")
    for level in ("debug", "info", "warning", "error"):
        getattr(logger, level)(f"line_{level}")
    written = {json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()}
    expected = {
        f"line_{level}" for level in ("debug", "info", "warning", "error") if logs_at(level)
    }
    assert written == expected == {"line_info", "line_warning", "line_error"}
