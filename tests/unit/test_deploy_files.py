"""No Docker engine runs here, so the container files are checked statically."""

import fnmatch
import re
import tomllib
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


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return loaded


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each from its FROM on."""
    instructions = dockerfile_instructions()
    starts = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    return [instructions[a:b] for a, b in zip(starts, [*starts[1:], None], strict=True)]


def test_dockerfile_runs_slim_as_non_root_with_a_health_check() -> None:
    final_stage = stages()[-1]
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-bookworm", final_stage[0][1])
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


def test_every_stage_starts_from_one_base_pinned_to_a_patch_release() -> None:
    bases = {stage[0][1].split()[0] for stage in stages()}
    assert len(bases) == 1, bases
    # The venv built in the first stage runs on the last stage's interpreter, at the same path.
    (base,) = bases
    match = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-bookworm", base)
    assert match, base
    minor = f"{match[1]}.{match[2]}"
    assert pyproject()["project"]["requires-python"] == f">={minor}"


def test_dockerfile_installs_the_locked_dependencies_before_copying_the_source() -> None:
    build = stages()[0]
    copies = [
        (i, rest.split()[:-1]) for i, (keyword, rest) in enumerate(build) if keyword == "COPY"
    ]
    syncs = [i for i, (keyword, rest) in enumerate(build) if keyword == "RUN" and "uv sync" in rest]
    assert len(syncs) == 2
    dependencies, project = syncs
    for flag in ("--locked", "--no-install-project"):
        assert flag in build[dependencies][1]
    assert "--locked" in build[project][1]
    assert "--no-install-project" not in build[project][1]
    # Only the lock and the file it is checked against are there when the dependencies install.
    before = [source for i, sources in copies if i < dependencies for source in sources]
    assert sorted(before) == ["pyproject.toml", "uv.lock"]
    after = {source for i, sources in copies if dependencies < i < project for source in sources}
    assert {"README.md", "services", "libs"} <= after


def test_dockerfile_runs_as_a_numeric_user_and_group() -> None:
    final_stage = stages()[-1]
    (user,) = [rest for keyword, rest in final_stage if keyword == "USER"]
    assert user == "10001:10001"
    (run,) = [rest for keyword, rest in final_stage if keyword == "RUN" and "useradd" in rest]
    assert "--uid 10001" in run
    assert "--gid 10001" in run


def test_dockerfile_and_makefile_pin_the_same_uv() -> None:
    (arg,) = [rest for keyword, rest in stages()[0] if keyword == "ARG" and "UV_VERSION" in rest]
    makefile = (REPO_ROOT / "Makefile").read_text()
    pinned = re.search(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert pinned
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned[1])
    assert arg == f"UV_VERSION={pinned[1]}"


def test_dockerignore_keeps_what_the_image_copies_and_drops_local_settings() -> None:
    ignored = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        source
        for keyword, rest in dockerfile_instructions()
        if keyword == "COPY" and not rest.startswith("--from")
        for source in rest.split()[:-1]
    ]
    for source in sources:
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source
    assert ".env" in ignored
