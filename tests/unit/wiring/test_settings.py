import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@pytest.mark.parametrize("bcs_key", [None, "", "   "])
def test_the_platforms_internal_api_key_turns_no_check_on(
    monkeypatch: pytest.MonkeyPatch, bcs_key: str | None
) -> None:
    # The platform's BOS sends BCS no key: a deployment carrying the platform-wide key must
    # not refuse every /define.
    monkeypatch.setenv("HULEEDU_INTERNAL_API_KEY", "platform-secret")
    if bcs_key is None:
        monkeypatch.delenv("BCS_INTERNAL_API_KEY", raising=False)
    else:
        monkeypatch.setenv("BCS_INTERNAL_API_KEY", bcs_key)
    assert load_settings().INTERNAL_API_KEY is None


def test_only_bcs_internal_api_key_sets_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HULEEDU_INTERNAL_API_KEY", "platform-secret")
    monkeypatch.setenv("BCS_INTERNAL_API_KEY", "sécret-ключ")
    key = load_settings().INTERNAL_API_KEY
    assert key is not None
    assert key.get_secret_value() == "sécret-ключ"
    assert "ключ" not in repr(load_settings())


# Text a header carries unchanged: no control character, no whitespace at either end.
header_safe_keys = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40
).filter(lambda key: key == key.strip())


@given(key=header_safe_keys)
def test_a_key_a_header_can_carry_is_accepted(key: str) -> None:
    loaded = load_settings(INTERNAL_API_KEY=key).INTERNAL_API_KEY
    assert loaded is not None
    assert loaded.get_secret_value() == key


@given(
    key=header_safe_keys,
    flaw=st.sampled_from([" ", "\t", "\n", "\r", "\x00", "\x1b", "\x7f", "\u00a0", "\u2003"]),
    where=st.sampled_from(["start", "end", "middle"]),
)
def test_a_key_with_edge_whitespace_or_a_control_character_is_refused_unechoed(
    key: str, flaw: str, where: str
) -> None:
    if where == "middle" and unicodedata.category(flaw) != "Cc":
        flaw = "\x01"  # a space inside a key is one a header keeps
    flawed = {"start": flaw + key, "end": key + flaw, "middle": key[:1] + flaw + key[1:]}[where]
    with pytest.raises(SettingsError) as caught:
        load_settings(INTERNAL_API_KEY=flawed)
    # One line naming the variable, the key nowhere in it.
    assert str(caught.value) == (
        "invalid setting BCS_INTERNAL_API_KEY: must not start or end with whitespace, nor "
        "contain control characters or bytes that are not UTF-8"
    )
