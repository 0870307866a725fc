"""No Docker engine runs here, so the container files are checked statically."""

import re
from pathlib import Path
from typing import Any

import yaml

from batch_conductor_service.wiring.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return loaded


def test_dockerfile_runs_slim_as_non_root_with_a_health_check() -> None:
    instructions = dockerfile_instructions()
    final_stage = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    assert re.fullmatch(r"python:3\.\d+-slim", final_stage[0][1])
    users = [rest for keyword, rest in final_stage if keyword == "USER"]
    assert users
    assert users[-1] not in {"root", "0"}
    assert ("EXPOSE", "4002") in final_stage
    healthchecks = [rest for keyword, rest in final_stage if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    # Liveness: a dependency outage must not have Docker restart the container.
    assert "/livez" in healthchecks[0]
    assert "/healthz" not in healthchecks[0]
    assert ("CMD", '["bcs"]') in final_stage


def test_dockerfile_copies_only_paths_that_exist() -> None:
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (REPO_ROOT / source).exists(), source


def test_dockerfile_points_the_service_at_the_copied_pipelines_file() -> None:
    env = " ".join(rest for keyword, rest in dockerfile_instructions() if keyword == "ENV")
    assert "BCS_PIPELINES_PATH=/app/pipelines.yaml" in env
    assert ("COPY", "pipelines.yaml /app/pipelines.yaml") in dockerfile_instructions()


def test_compose_runs_the_whole_stack_with_health_checks() -> None:
    services = compose()["services"]
    assert set(services) == {"kafka", "redis", "postgres", "batch_conductor_service"}
    for name, service in services.items():
        assert "test" in service["healthcheck"], name
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"]
    assert "ZOOKEEPER" not in str(services["kafka"])


def test_compose_restarts_what_stops_and_probes_the_service_for_liveness() -> None:
    services = compose()["services"]
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
    probe = " ".join(services["batch_conductor_service"]["healthcheck"]["test"])
    assert "/livez" in probe
    assert "/healthz" not in probe


def test_compose_service_reaches_the_others_and_waits_for_them() -> None:
    services = compose()["services"]
    bcs = services["batch_conductor_service"]
    env = bcs["environment"]
    assert env["BCS_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["BCS_REDIS_URL"].startswith("redis://redis:6379")
    assert "@postgres:5432/" in env["BCS_DATABASE_URL"]
    assert bcs["depends_on"] == {
        name: {"condition": "service_healthy"} for name in ("kafka", "redis", "postgres")
    }
    assert "4002:4002" in bcs["ports"]
    kafka_env = services["kafka"]["environment"]
    assert "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]


def test_compose_settings_are_valid_service_settings() -> None:
    env = compose()["services"]["batch_conductor_service"]["environment"]
    settings = Settings(**{key.removeprefix("BCS_"): value for key, value in env.items()})
    assert settings.HTTP_PORT == 4002
    assert not settings.uses_memory_repository
