"""The configured level drops the lines under it, and only those."""

import json

import pytest

from huleedu_service_libs.logging_utils import configure_logging, get_logger

pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.mark.parametrize(
    ("level", "kept"),
    [
        ("DEBUG", {"debug", "info", "warning", "error"}),
        ("INFO", {"info", "warning", "error"}),
        ("WARNING", {"warning", "error"}),
        ("ERROR", {"error"}),
    ],
)
def test_lines_under_the_configured_level_are_dropped(
    level: str, kept: set[str], capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level)
    capsys.readouterr()
    logger = get_logger("t")
    for method in ("debug", "info", "warning", "error"):
        getattr(logger, method)(f"line_{method}")
    written = {json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()}
    assert written == {f"line_{method}" for method in kept}
