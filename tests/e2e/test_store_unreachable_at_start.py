"""A store that cannot be reached at start stops start-up the same way for Redis and for
PostgreSQL: exit 1, one plain line naming the setting and the cause (no password), no
traceback. The orchestrator's restart policy retries; a wrong URL is seen at once."""

import json
import sys
import uuid

import pytest

from batch_conductor_service.dev.embedded_broker import free_port
from tests.e2e.conftest import run_tool
from tests.integration.stores.conftest import DATABASE_URL, REDIS_URL

PASSWORD = "s3cret-Pa55"


def start(env: dict[str, str]) -> tuple[int, list[str], list[dict[str, object]]]:
    """Runs `bcs` until it exits: its exit code, its plain lines, its JSON log lines."""
    result = run_tool(
        [sys.executable, "-m", "batch_conductor_service"],
        {
            "BCS_KAFKA_CONSUMER_ENABLED": "false",
            "BCS_HTTP_HOST": "127.0.0.1",
            "BCS_HTTP_PORT": str(free_port()),
            "BCS_REDIS_URL": REDIS_URL,
            "BCS_REDIS_TIMEOUT_SECONDS": "2",
            "BCS_DATABASE_TIMEOUT_SECONDS": "2",
            **env,
        },
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert PASSWORD not in output
    lines = output.splitlines()
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    assert not [line for line in logged if "exception" in line]
    return result.returncode, [line for line in lines if not line.startswith("{")], logged


def closed_port_url(scheme: str, path: str) -> str:
    # A port nothing listens on (free_port's socket is closed again).
    return f"{scheme}://bcs:{PASSWORD}@127.0.0.1:{free_port()}{path}"


def test_redis_unreachable_at_start_is_one_line_naming_bcs_redis_url() -> None:
    url = closed_port_url("redis", "/0")

    code, plain, logged = start({"BCS_REDIS_URL": url})

    redacted = url.replace(PASSWORD, "***")
    assert code == 1
    assert plain == [f"bcs: cannot reach Redis at {redacted} (BCS_REDIS_URL): Connection refused"]
    # What it tried is in the start-up line, before the failure.
    (configured,) = [line for line in logged if line["event"] == "service_configured"]
    assert (configured["store"], configured["redis_url"]) == ("redis", redacted)


@pytest.mark.parametrize("cluster", ["false", "true"])
def test_redis_is_reached_at_start_on_one_server_or_a_cluster_node(cluster: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}"

    code, plain, _ = start({"BCS_REDIS_URL": url, "BCS_REDIS_CLUSTER": cluster})

    assert code == 1
    assert plain == [f"bcs: cannot reach Redis at {url} (BCS_REDIS_URL): Connection refused"]


def test_postgresql_unreachable_at_start_is_one_line_naming_bcs_database_url() -> None:
    url = closed_port_url("postgresql", "/bcs")

    code, plain, _ = start({"BCS_DATABASE_URL": url})

    redacted = url.replace(PASSWORD, "***")
    assert code == 1
    assert plain == [
        f"bcs: cannot reach PostgreSQL at {redacted} (BCS_DATABASE_URL): Connection refused"
    ]


def test_a_missing_database_is_one_line_naming_bcs_database_url_and_the_database() -> None:
    missing = f"bcs_missing_{uuid.uuid4().hex[:8]}"
    server = DATABASE_URL.rpartition("/")[0]
    url = f"{server}/{missing}?password={PASSWORD}"

    code, plain, _ = start({"BCS_DATABASE_URL": url})

    assert code == 1
    assert plain == [
        f"bcs: cannot reach PostgreSQL at {server}/{missing}?password=*** (BCS_DATABASE_URL): "
        f'database "{missing}" does not exist'
    ]
