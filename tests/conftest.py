"""Fixtures every layer uses. Integration fixtures skip when a service is missing, except under
CI (CI=true), where a missing service is a failure: CI must never pass by skipping."""

import os

import pytest


def service_missing(what: str) -> None:
    """Call from a fixture when `what` cannot be reached."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{what} is not reachable, and under CI integration tests must not skip")
    pytest.skip(f"{what} is not reachable")
