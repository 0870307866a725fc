"""Start-up says in one line what the service runs with: the store and where it is, the broker,
the group, the pipelines file, the key; never a password."""

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from batch_conductor_service.wiring.settings import load_settings
from tests.unit.conftest import REPO_ROOT, AppFactory

SECRET = "pa55-w0rd"
COMMON = {
    "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
    "KAFKA_CONSUMER_GROUP_ID": "bcs-group",
    "PIPELINES_PATH": REPO_ROOT / "pipelines.yaml",
}
EXPECTED_COMMON = {
    "kafka_bootstrap_servers": "k1:9092,k2:9092",
    "kafka_consumer_enabled": True,
    "kafka_consumer_group": "bcs-group",
    "pipelines_path": str(REPO_ROOT / "pipelines.yaml"),
    "internal_api_key": "off",
}


@pytest.mark.parametrize(
    ("settings", "store"),
    [
        ({"USE_MOCK_REPOSITORY": True}, {"store": "memory"}),
        (
            {"REDIS_URL": f"redis://:{SECRET}@redis:6379/2"},
            {"store": "redis", "redis_url": "redis://:***@redis:6379/2"},
        ),
        (
            {"REDIS_URL": f"redis://bcs:{SECRET}@node-1:7000", "REDIS_CLUSTER": True},
            {"store": "redis_cluster", "redis_url": "redis://bcs:***@node-1:7000"},
        ),
        (
            {
                "REDIS_URL": "redis://redis:6379/0",
                "DATABASE_URL": f"postgresql://bcs:{SECRET}@pg:5432/bcs_db",
                "DATABASE_SCHEMA": "bcs_state",
            },
            {
                "store": "redis+postgresql",
                "redis_url": "redis://redis:6379/0",
                "database_url": "postgresql://bcs:***@pg:5432/bcs_db",
                "database_schema": "bcs_state",
            },
        ),
    ],
)
def test_the_line_names_the_store_and_where_it_is_never_a_password(
    settings: dict[str, object], store: dict[str, object]
) -> None:
    summary = load_settings(**COMMON, **settings).in_use()

    assert summary == {"environment": "development", **store, **EXPECTED_COMMON}
    assert SECRET not in json.dumps(summary)


def test_the_key_is_said_to_be_required_never_shown() -> None:
    summary = load_settings(**COMMON, INTERNAL_API_KEY=SECRET).in_use()

    assert summary["internal_api_key"] == "required"
    assert SECRET not in json.dumps(summary)


def test_a_relative_pipelines_path_is_shown_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    summary = load_settings(PIPELINES_PATH="conf/pipelines.yaml").in_use()

    assert summary["pipelines_path"] == str(tmp_path / "conf" / "pipelines.yaml")


async def test_start_up_logs_it_once_at_info(make_app: AppFactory) -> None:
    app = make_app(INTERNAL_API_KEY=SECRET)
    with capture_logs() as logs:
        async with app.test_app():
            pass

    configured = [line for line in logs if line["event"] == "service_configured"]
    assert len(configured) == 1
    assert configured[0]["log_level"] == "info"
    assert configured[0]["store"] == "memory"
    assert configured[0]["internal_api_key"] == "required"
    assert SECRET not in json.dumps(logs, default=str)
