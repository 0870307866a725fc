"""Under CI a test never passes by skipping: a missing service or tool fails it, and .ci/run
installs every tool a test looks for."""

import re
from pathlib import Path

import pytest

from tests.conftest import service_missing

CI_RUN = Path(__file__).resolve().parents[2] / ".ci" / "run"


def test_a_missing_service_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="promtool"):
        service_missing("promtool")


def test_a_missing_service_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium"):
        service_missing("chromium")


@pytest.mark.parametrize(
    ("command", "package"), [("promtool", "prometheus"), ("chromium", "chromium")]
)
def test_ci_installs_each_tool_the_tests_run(command: str, package: str) -> None:
    script = CI_RUN.read_text()
    pattern = (
        rf"^command -v {command} >/dev/null \|\| apt_install (--no-install-recommends )?{package}$"
    )
    assert re.search(pattern, script, re.MULTILINE), (command, package)
    # ... before the tests run.
    assert script.index(f"command -v {command}") < script.index("make test")
