""".env.example lists every setting the service and its dev tools read, with values they accept,
so it cannot drift from the settings classes."""

import re
from pathlib import Path

from dotenv import dotenv_values

from batch_conductor_service.dev.settings import DevSettings
from batch_conductor_service.wiring.settings import ENV_PREFIX, Environment, Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
# The dev tools' variables are listed commented out: the service ignores them.
COMMENTED = re.compile(rf"^# ({ENV_PREFIX}[A-Z_]+)=(.*)$", re.MULTILINE)


def listed() -> dict[str, str | None]:
    return dotenv_values(ENV_EXAMPLE)


def test_every_service_setting_is_listed_and_nothing_else() -> None:
    names = {name.removeprefix(ENV_PREFIX) for name in listed()}
    assert all(name.startswith(ENV_PREFIX) for name in listed())
    assert names == set(Settings.model_fields)


def test_every_dev_tool_setting_is_listed_commented_out() -> None:
    commented = dict(COMMENTED.findall(ENV_EXAMPLE.read_text()))
    assert {name.removeprefix(ENV_PREFIX) for name in commented} == set(DevSettings.model_fields)
    DevSettings(**{name.removeprefix(ENV_PREFIX): value for name, value in commented.items()})


def test_the_listed_values_are_valid_production_settings() -> None:
    values = {name.removeprefix(ENV_PREFIX): value for name, value in listed().items()}
    settings = Settings(**values)
    assert settings.ENVIRONMENT is Environment.PRODUCTION
    assert not settings.uses_memory_repository
    assert settings.DATABASE_URL is not None
    assert settings.KAFKA_CONSUMER_ENABLED


def test_every_variable_follows_a_comment_saying_what_it_is() -> None:
    lines = ENV_EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.startswith(ENV_PREFIX):
            # A comment above it, or above the run of variables it belongs to.
            above = next(
                earlier
                for earlier in reversed(lines[:number])
                if not earlier.startswith(ENV_PREFIX)
            )
            assert above.startswith("# "), line
