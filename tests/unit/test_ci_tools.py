"""Under CI a test never passes by skipping: a missing service or tool fails it, and .ci/run
installs every tool a test looks for."""

import re
from pathlib import Path

import pytest
from hypothesis import settings

from tests.conftest import HYPOTHESIS_PROFILE, service_missing
from tests.support.hypothesis_profiles import PROFILE_VARIABLE, chosen_profile, examples

CI_RUN = Path(__file__).resolve().parents[2] / ".ci" / "run"


def test_a_missing_service_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="promtool"):
        service_missing("promtool")


def test_a_missing_service_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium"):
        service_missing("chromium")


TESTS = Path(__file__).resolve().parents[1]
TOOLS = sorted(
    {
        found
        for source in TESTS.rglob("*.py")
        for found in re.findall(r'tool_on_path\("([^"]+)", "([^"]+)"\)', source.read_text())
    }
)


def test_the_tools_the_tests_run_are_found() -> None:
    assert {"promtool", "chromium", "curl"} <= {command for command, _ in TOOLS}


@pytest.mark.parametrize(("command", "package"), TOOLS)
def test_ci_installs_each_tool_the_tests_run(command: str, package: str) -> None:
    script = CI_RUN.read_text()
    pattern = (
        rf"^command -v {command} >/dev/null \|\| apt_install (--no-install-recommends )?{package}$"
    )
    assert re.search(pattern, script, re.MULTILINE), (command, package)
    # ... before the tests run.
    assert script.index(f"command -v {command}") < script.index("make test")


def test_ci_runs_the_property_tests_at_full_strength(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROFILE_VARIABLE, raising=False)
    monkeypatch.setenv("CI", "true")
    assert (chosen_profile(), examples(150), examples(7)) == ("ci", 150, 7)
    monkeypatch.delenv("CI")
    # Locally a tenth, never fewer than ten, never more than the full count.
    assert (chosen_profile(), examples(150), examples(40), examples(7)) == ("dev", 15, 10, 7)
    monkeypatch.setenv(PROFILE_VARIABLE, "ci")
    assert examples(150) == 150
    monkeypatch.setenv(PROFILE_VARIABLE, "full")
    with pytest.raises(ValueError, match=PROFILE_VARIABLE):
        chosen_profile()


def test_the_session_runs_the_profile_its_environment_chose() -> None:
    # Loaded by tests/conftest.py before any test module, whose @settings inherit from it.
    assert chosen_profile() == HYPOTHESIS_PROFILE
    assert settings.default.max_examples == examples(100)
    assert settings.default.deadline is None
