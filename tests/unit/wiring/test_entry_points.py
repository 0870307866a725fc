"""What each entry point answers before it starts anything (--help, --version, a setting it
refuses), by calling its main() in this process. tests/e2e/test_entry_points.py runs the
installed commands themselves, and the start-up failures that need a process of their own."""

import os
import socket
from collections.abc import Callable, Iterator, Sequence
from importlib.metadata import version
from pathlib import Path

import pytest

from batch_conductor_service.__main__ import main as bcs_main
from batch_conductor_service.dev.demo import main as demo_main
from batch_conductor_service.dev.run import main as dev_main

Main = Callable[[Sequence[str] | None], None]
MAINS: dict[str, Main] = {"bcs": bcs_main, "bcs-dev": dev_main, "bcs-demo": demo_main}
VERSION = version("huleedu-batch-conductor-service")


@pytest.fixture(autouse=True)
def no_bcs_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the variables a test sets; and a directory holding no .bcs-dev.json, so that a
    developer's own running bcs-dev is not what the commands find."""
    for name in list(os.environ):
        if name.startswith("BCS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def taken_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Whatever tried to start would fail at once: the HTTP port is taken, and the broker and
    the service named are not there."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port: int = taken.getsockname()[1]
        monkeypatch.setenv("BCS_HTTP_PORT", str(port))
        monkeypatch.setenv("BCS_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        monkeypatch.setenv("BCS_DEMO_URL", "http://127.0.0.1:1")
        yield port


def exit_of(
    main: Main, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """main(argv) must end by SystemExit: its exit status, stdout and stderr."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    code = exited.value.code
    out, err = capsys.readouterr()
    assert code is None or isinstance(code, int), code
    return code or 0, out, err


@pytest.mark.parametrize(
    ("variable", "value"),
    [("BCS_HTTP_PORT", "abc"), ("BCS_ENVIRONMENT", "staging"), ("BCS_LOG_LEVEL", "chatty")],
)
def test_invalid_setting_stops_start_up_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setenv("BCS_USE_MOCK_REPOSITORY", "true")
    monkeypatch.setenv(variable, value)
    code, out, err = exit_of(bcs_main, [], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"bcs: invalid setting {variable}=")
    assert out == ""


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_exits_without_starting(
    capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    code, out, err = exit_of(bcs_main, [flag], capsys)
    assert code == 0
    assert out.startswith("usage: bcs")
    for command_name in ("inspect", "dlq"):
        assert command_name in out
    assert "serving" not in out + err


@pytest.mark.usefixtures("taken_port")
@pytest.mark.parametrize("command", sorted(MAINS))
@pytest.mark.parametrize("flag", ["--help", "-h", "--version"])
def test_every_entry_point_answers_help_and_version_without_starting_anything(
    capsys: pytest.CaptureFixture[str], command: str, flag: str
) -> None:
    code, out, err = exit_of(MAINS[command], [flag], capsys)
    assert code == 0, err
    assert err == ""
    if flag == "--version":
        assert out == f"{command} {VERSION}\n"
    else:
        assert out.startswith(f"usage: {command} ")
        assert "BCS_" in out


@pytest.mark.parametrize("subcommand", [["inspect"], ["dlq"], ["dlq", "list"], ["dlq", "replay"]])
def test_every_subcommand_has_help(
    capsys: pytest.CaptureFixture[str], subcommand: list[str]
) -> None:
    code, out, _ = exit_of(bcs_main, [*subcommand, "--help"], capsys)
    assert code == 0
    assert out.startswith(f"usage: bcs {' '.join(subcommand)}")


@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        ("bcs-dev", "BCS_DEV_BROKER_PORT", "abc"),
        ("bcs-dev", "BCS_DEV_BROKER_PORT", "70000"),
        ("bcs-demo", "BCS_DEMO_URL", "localhost:4002"),
    ],
)
def test_dev_settings_are_validated_like_the_service_settings(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)
    code, _, err = exit_of(MAINS[command], [], capsys)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{command}: invalid setting {variable}={value!r}: ")
