"""Fixtures every layer uses. Integration fixtures skip when a service is missing, except under
CI (CI=true), where a missing service is a failure: CI must never pass by skipping."""

import shutil
from collections.abc import Iterator

import pytest

from tests.process_guard import adopt_orphans, left_behind
from tests.support.hypothesis_profiles import PROFILE_VARIABLE, load_profile, under_ci

# Before any test module is imported: their @settings inherit from the profile loaded here.
HYPOTHESIS_PROFILE = load_profile()


def pytest_report_header() -> str:
    return f"hypothesis profile: {HYPOTHESIS_PROFILE} (CI or {PROFILE_VARIABLE} chooses)"


def service_missing(what: str) -> None:
    """Call from a fixture when `what` cannot be reached."""
    if under_ci():
        pytest.fail(f"{what} is not reachable, and under CI integration tests must not skip")
    pytest.skip(f"{what} is not reachable")


def tool_on_path(name: str, package: str) -> str:
    """The path of a command-line tool a test runs; missing, it is a missing service."""
    found = shutil.which(name)
    if found is None:
        service_missing(f"{name} (Debian package {package})")
    assert found is not None
    return found


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """`make test` must leave nothing running: every process a test started, and every process
    those started, has stopped by the end of the session (checked where Linux allows it)."""
    watching = adopt_orphans()
    yield
    if watching:
        leftovers = left_behind()
        assert not leftovers, f"processes left running (now killed): {leftovers}"
