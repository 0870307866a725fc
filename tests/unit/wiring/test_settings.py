from pathlib import Path

import pytest

from batch_conductor_service.wiring.settings import Environment, SettingsError, load_settings


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        "BCS_ENVIRONMENT",
        "BCS_USE_MOCK_REPOSITORY",
        "BCS_HTTP_HOST",
        "BCS_HTTP_PORT",
        "BCS_LOG_LEVEL",
        "BCS_HTTP_TIMEOUT",
        "BCS_KAFKA_BOOTSTRAP_SERVERS",
        "BCS_REDIS_URL",
        "BCS_REDIS_TTL_SECONDS",
        "BCS_PARKED_RESULT_TTL_SECONDS",
        "BCS_MAX_PARKED_RESULTS",
    ]:
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.ENVIRONMENT is Environment.DEVELOPMENT
    assert settings.USE_MOCK_REPOSITORY is False
    assert settings.HTTP_HOST == "0.0.0.0"
    assert settings.HTTP_PORT == 4002
    assert settings.LOG_LEVEL == "INFO"
    assert settings.HTTP_TIMEOUT == 30
    assert settings.KAFKA_BOOTSTRAP_SERVERS == "localhost:9092"
    assert settings.REDIS_URL == "redis://localhost:6379"
    assert settings.REDIS_TTL_SECONDS == 604800
    assert settings.PARKED_RESULT_TTL_SECONDS == 86400
    assert settings.MAX_PARKED_RESULTS == 100_000
    assert Path("pipelines.yaml") == settings.PIPELINES_PATH


def test_values_come_from_bcs_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCS_HTTP_PORT", "5000")
    monkeypatch.setenv("BCS_ENVIRONMENT", "Production")
    monkeypatch.setenv("BCS_LOG_LEVEL", "debug")
    monkeypatch.setenv("BCS_USE_MOCK_REPOSITORY", "true")
    settings = load_settings()
    assert settings.HTTP_PORT == 5000
    assert settings.ENVIRONMENT is Environment.PRODUCTION
    assert settings.LOG_LEVEL == "DEBUG"
    assert settings.uses_memory_repository


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BCS_HTTP_PORT", "abc"),
        ("BCS_HTTP_PORT", "70000"),
        ("BCS_ENVIRONMENT", "staging"),
        ("BCS_USE_MOCK_REPOSITORY", "perhaps"),
        ("BCS_LOG_LEVEL", "loud"),
        ("BCS_REDIS_TTL_SECONDS", "0"),
        ("BCS_HTTP_TIMEOUT", "-1"),
        ("BCS_MAX_REQUEST_BYTES", "10"),
        ("BCS_PARKED_RESULT_TTL_SECONDS", "0"),
        ("BCS_MAX_PARKED_RESULTS", "none"),
    ],
)
def test_invalid_value_is_reported_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"invalid setting {variable}=")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("environment", "use_mock", "memory"),
    [
        ("testing", "false", True),
        ("development", "true", True),
        ("production", "true", True),
        ("development", "false", False),
        ("production", "false", False),
    ],
)
def test_repository_selection_follows_environment_and_switch(
    monkeypatch: pytest.MonkeyPatch, environment: str, use_mock: str, memory: bool
) -> None:
    monkeypatch.setenv("BCS_ENVIRONMENT", environment)
    monkeypatch.setenv("BCS_USE_MOCK_REPOSITORY", use_mock)
    assert load_settings().uses_memory_repository is memory


def test_blank_database_url_means_no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCS_DATABASE_URL", "  ")
    assert load_settings().DATABASE_URL is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BCS_REDIS_URL", "localhost:6379"),
        ("BCS_DATABASE_URL", "mysql://user:secret@db/x"),
    ],
)
def test_a_bad_url_names_the_variable_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"invalid setting {variable}: must start with")
    assert value not in str(caught.value)


@pytest.mark.parametrize(
    ("bcs_key", "platform_key", "expected"),
    [
        ("", "platform-secret", "platform-secret"),
        ("   ", "platform-secret", "platform-secret"),
        ("own-secret", "platform-secret", "own-secret"),
        (None, "platform-secret", "platform-secret"),
        ("", "", None),
        ("", None, None),
    ],
)
def test_a_blank_internal_api_key_does_not_hide_the_platforms(
    monkeypatch: pytest.MonkeyPatch,
    bcs_key: str | None,
    platform_key: str | None,
    expected: str | None,
) -> None:
    # Deployments share HULEEDU_INTERNAL_API_KEY; a template that leaves BCS_INTERNAL_API_KEY
    # empty must not turn the key check off.
    for name, value in (
        ("BCS_INTERNAL_API_KEY", bcs_key),
        ("HULEEDU_INTERNAL_API_KEY", platform_key),
    ):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    key = load_settings().INTERNAL_API_KEY
    assert (None if key is None else key.get_secret_value()) == expected
