"""Hypothesis profiles: "ci" runs every property test at its full example count; "dev", the
default outside CI, runs a tenth of it so that the local loop stays fast. BCS_TEST_HYPOTHESIS
(ci or dev) chooses one explicitly, e.g. BCS_TEST_HYPOTHESIS=ci for a CI-strength run at home."""

import os

from hypothesis import HealthCheck, settings

PROFILE_VARIABLE = "BCS_TEST_HYPOTHESIS"
# Hypothesis's own default count, which tests without a count of their own run in CI.
FULL_DEFAULT = 100
DEV_SHARE = 10
DEV_FLOOR = 10


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def chosen_profile() -> str:
    chosen = os.environ.get(PROFILE_VARIABLE) or ("ci" if under_ci() else "dev")
    if chosen not in {"ci", "dev"}:
        raise ValueError(f"{PROFILE_VARIABLE}={chosen!r}: expected ci or dev")
    return chosen


def examples(full: int) -> int:
    """A test's example count: `full` in the ci profile, a tenth of it (at least ten) in dev."""
    return full if chosen_profile() == "ci" else _dev_count(full)


def _dev_count(full: int) -> int:
    return min(full, max(DEV_FLOOR, full // DEV_SHARE))


def load_profile() -> str:
    # No deadline and no too_slow check: on two cores shared by parallel workers a slow
    # example is the machine, not the code (timing guarantees have tests of their own).
    for name, count in (("ci", FULL_DEFAULT), ("dev", _dev_count(FULL_DEFAULT))):
        settings.register_profile(
            name,
            max_examples=count,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
    profile = chosen_profile()
    settings.load_profile(profile)
    return profile
