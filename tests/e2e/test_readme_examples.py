"""The README's examples, run as a reader would: `make run`, `make demo`, then every command of
the README's "The API" in order, each answer compared with what the README shows; the same for
every command of docs/api.md, the full reference, on a fresh service of its own, down to /metrics.

Needs curl (the README's examples are curl commands); .ci/run installs it where it is missing.
"""

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from batch_conductor_service.dev.embedded_broker import free_port
from tests.conftest import tool_on_path
from tests.e2e.conftest import (
    BIN,
    REPO_ROOT,
    RunningService,
    run_tool,
    start_service,
    stop_if_running,
)

README = (REPO_ROOT / "README.md").read_text()
API_REFERENCE = (REPO_ROOT / "docs" / "api.md").read_text()
README_URL = "localhost:4002"


@dataclass
class Example:
    command: str
    # The README's answer: a code block after the command, or `# <status> <body>` comments.
    shown: str | None = None
    shown_kind: str = ""
    comments: list[str] = field(default_factory=list)


def api_section() -> str:
    start = README.index("\n## The API")
    return README[start : README.index("\n## ", start + 1)]


@dataclass(frozen=True)
class Document:
    name: str
    examples: str
    # Each document shows at least this many answers; the full reference ends with /metrics.
    least_checked: int
    shows_metrics: bool


DOCUMENTS = [
    Document("README.md", api_section(), least_checked=4, shows_metrics=False),
    Document("docs/api.md", API_REFERENCE, least_checked=13, shows_metrics=True),
]


def examples(section: str) -> list[Example]:
    found: list[Example] = []
    blocks = re.finditer(r"```(\w*)\n(.*?)```", section, flags=re.DOTALL)
    previous_end, last_sh_commands = 0, 0
    for block in blocks:
        kind, text = block.group(1), block.group(2)
        gap = section[previous_end : block.start()]
        previous_end = block.end()
        if kind == "sh":
            commands = _commands(text)
            found.extend(commands)
            last_sh_commands = len(commands)
        elif last_sh_commands == 1 and not gap.strip():
            found[-1].shown, found[-1].shown_kind = text, kind
            last_sh_commands = 0
    return found


def _commands(text: str) -> list[Example]:
    commands: list[Example] = []
    for line in text.replace("\\\n", " ").splitlines():
        if line.startswith("# ") and commands:
            commands[-1].comments.append(line[2:])
        elif line.strip() and not line.startswith("#"):
            commands.append(Example(command=line))
    return commands


def run_shell(command: str, base_url: str) -> str:
    result = subprocess.run(
        ["bash", "-c", command.replace(README_URL, base_url.removeprefix("http://"))],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return result.stdout.decode()


def comparable(shown: Any, real: Any) -> None:
    """Equal, where the README elides a part: "...": "..." in an object (only the shown keys
    count), or "..." for a value that differs on every run (a time)."""
    if shown == "...":
        assert real is not None
    elif isinstance(shown, dict) and isinstance(real, dict):
        keys = set(shown) - {"..."}
        if "..." not in shown:
            assert set(real) == keys
        for key in keys:
            comparable(shown[key], real[key])
    elif isinstance(shown, list) and isinstance(real, list):
        assert len(shown) == len(real)
        for shown_item, real_item in zip(shown, real, strict=True):
            comparable(shown_item, real_item)
    else:
        assert shown == real


def check(example: Example, output: str) -> None:
    if example.comments:
        (comment,) = example.comments
        _status, _, body = comment.partition(" ")
        comparable(json.loads(body), json.loads(output))
    elif example.shown_kind == "json":
        comparable(json.loads(example.shown or ""), json.loads(output))
    elif example.shown is not None and "HTTP/1.1" in example.shown:
        head, _, body = example.shown.partition("\n\n")
        real_head, _, real_body = output.replace("\r\n", "\n").partition("\n\n")
        real_lines = {line.strip().lower() for line in real_head.splitlines()}
        for line in head.splitlines():
            assert line.lower() in real_lines, line
        comparable(json.loads(body), json.loads(real_body))
    elif example.shown is not None:
        assert output.splitlines() == example.shown.splitlines()


@pytest.fixture
def fresh_dev_run(tmp_path: Path) -> Iterator[RunningService]:
    """`make run` as a reader starts it: nothing has asked the service anything yet."""
    tool_on_path("curl", "curl")  # the README's examples are curl commands
    running = start_service(
        [str(BIN / "bcs-dev")],
        {"BCS_DEV_BROKER_PORT": "0", "BCS_DEV_STATE_FILE": str(tmp_path / "bcs-dev.json")},
        free_port(),
        tmp_path / "dev.log",
        probe_with_request=False,
    )
    yield running
    stop_if_running(running)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda document: document.name)
def test_the_api_examples_answer_what_the_document_shows(
    document: Document, fresh_dev_run: RunningService, tmp_path: Path
) -> None:
    dev_service = fresh_dev_run
    demo = run_tool([str(BIN / "bcs-demo")], {"BCS_DEV_STATE_FILE": str(tmp_path / "bcs-dev.json")})
    assert demo.returncode == 0, demo.stderr
    found = examples(document.examples)
    assert any("/metrics" in example.command for example in found) == document.shows_metrics
    checked = 0
    for example in found:
        output = run_shell(example.command, dev_service.base_url)
        check(example, output)
        checked += bool(example.comments or example.shown)
    assert checked >= document.least_checked


def test_the_demo_prints_what_the_readme_shows(dev_service: RunningService, tmp_path: Path) -> None:
    demo = run_tool([str(BIN / "bcs-demo")], {"BCS_DEV_STATE_FILE": str(tmp_path / "bcs-dev.json")})
    assert demo.returncode == 0, demo.stderr
    start = README.index("```\nBefore any events")
    shown = README[start + 4 : README.index("```", start + 4)]
    batch_id = re.search(r"batch (demo-batch-\w+):", demo.stdout)
    assert batch_id is not None
    real = demo.stdout.replace(batch_id.group(1), "demo-batch-f273c327").splitlines()
    for line in shown.splitlines():
        assert line in real, line


def test_the_readme_runs_the_commands_from_the_venv() -> None:
    # `make run` leaves no `bcs` on PATH; the README says where it is.
    assert ".venv/bin/bcs" in README
    for line in re.findall(r"^(?:\$ )?bcs .*$", README, flags=re.MULTILINE):
        raise AssertionError(f"a bare `bcs` command the reader cannot run: {line}")
