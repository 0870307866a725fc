"""A clone of the repository runs every test on its own: nothing refers to the platform team's
shared folder beside the checkout (CI lays one there, so a reference would pass in CI and fail
on a developer's clone); the recorded messages the tests read live in tests/fixtures/."""

import re
from pathlib import Path

from tests.support import huleedu_fixtures as hf

REPO_ROOT = Path(__file__).resolve().parents[2]
SCANNED = [
    *(REPO_ROOT / folder for folder in ("tests", "services", "libs", "bench", "deploy", ".ci")),
    *(
        REPO_ROOT / name
        for name in ("Makefile", "Dockerfile", "pyproject.toml", "docker-compose.yml")
    ),
]
OUTSIDE = re.compile(r"\.\./shared\b|\bshared/fixtures\b|/work/shared\b")
SKIPPED_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def scanned_files() -> list[Path]:
    files = []
    for root in SCANNED:
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in candidates:
            if path.is_file() and not SKIPPED_PARTS & set(path.parts):
                files.append(path)
    return files


def test_no_file_refers_to_the_shared_folder_outside_the_repository() -> None:
    here = Path(__file__).resolve()
    files = [path for path in scanned_files() if path != here]
    assert len(files) > 100
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


def test_the_recorded_messages_and_their_descriptions_are_in_the_repository() -> None:
    assert hf.FIXTURES.is_relative_to(REPO_ROOT / "tests")
    for document in ("README.md", "TOPICS.md", "API.md"):
        assert (hf.FIXTURES / document).is_file(), document
    names = hf.fixture_names()
    assert {name.split("/")[0] for name in names} == {"current", "seed-era"}
    for name in names:
        assert hf.load(name).topic
