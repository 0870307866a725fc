"""The dev state file is believed only when it is yours, names loopback addresses alone, and
its pid is a bcs-dev of yours that runs: a planted one must not send a command elsewhere."""

import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_conductor_service.dev.state import (
    DevRunState,
    UntrustedDevStateError,
    is_loopback_host,
    is_loopback_url,
)


@pytest.fixture
def fake_bcs_dev(tmp_path: Path) -> Iterator[int]:
    """A process that shows in /proc as bcs-dev does: the interpreter running a script named
    bcs-dev."""
    script = tmp_path / "bcs-dev"
    script.write_text("import time\ntime.sleep(600)\n")
    process = subprocess.Popen([sys.executable, str(script)])
    # Until its exec, the child shows the command line of this test's process.
    command_line = Path(f"/proc/{process.pid}/cmdline")
    for _ in range(500):
        if str(script).encode() in command_line.read_bytes():
            break
        time.sleep(0.01)
    yield process.pid
    process.kill()
    process.wait()


def state(pid: int, **changes: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "pid": pid,
        "broker_pid": None,
        "bootstrap_servers": "127.0.0.1:19092",
        "service_url": "http://127.0.0.1:4002",
    }
    return {**fields, **changes}


def planted(tmp_path: Path, content: dict[str, object] | str) -> Path:
    path = tmp_path / "bcs-dev.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def refusal(path: Path) -> str:
    with pytest.raises(UntrustedDevStateError) as raised:
        DevRunState.read(path)
    message = str(raised.value)
    assert message.startswith(f"not using {path}: ")
    return message.removeprefix(f"not using {path}: ")


def test_no_file_is_no_dev_run(tmp_path: Path) -> None:
    assert DevRunState.read(tmp_path / "absent.json") is None


def test_the_state_of_a_running_bcs_dev_of_yours_is_read(tmp_path: Path, fake_bcs_dev: int) -> None:
    for url, servers in [
        ("http://127.0.0.1:4002", "127.0.0.1:19092"),
        ("http://localhost:4002", "localhost:19092, 127.0.0.2:19093"),
        ("http://[::1]:4002", "[::1]:19092"),
    ]:
        path = planted(tmp_path, state(fake_bcs_dev, service_url=url, bootstrap_servers=servers))
        assert DevRunState.read(path) == DevRunState(fake_bcs_dev, None, servers, url)


def test_pid_1_is_refused(tmp_path: Path) -> None:
    assert refusal(planted(tmp_path, state(1))) == "its pid 1 cannot be a bcs-dev"


def test_a_running_process_that_is_not_bcs_dev_is_refused(tmp_path: Path) -> None:
    # This test's own process runs, and is pytest.
    pid = os.getpid()
    assert refusal(planted(tmp_path, state(pid))) == f"process {pid} is not a bcs-dev"


def test_a_bcs_dev_that_no_longer_runs_is_refused(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    assert refusal(planted(tmp_path, state(gone.pid))) == (
        f"the bcs-dev that wrote it (pid {gone.pid}) no longer runs"
    )


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        (
            {"service_url": "http://evil.example:4002"},
            "its service URL 'http://evil.example:4002' is not on this machine (loopback)",
        ),
        (
            {"service_url": "http://127.0.0.1:4002@evil.example/"},
            "its service URL 'http://127.0.0.1:4002@evil.example/' is not on this machine "
            "(loopback)",
        ),
        (
            {"bootstrap_servers": "127.0.0.1:19092,10.1.2.3:9092"},
            "its Kafka '127.0.0.1:19092,10.1.2.3:9092' is not on this machine (loopback)",
        ),
    ],
)
def test_an_address_off_this_machine_is_refused(
    tmp_path: Path, fake_bcs_dev: int, changes: dict[str, object], why: str
) -> None:
    assert refusal(planted(tmp_path, state(fake_bcs_dev, **changes))) == why


def test_a_file_of_another_user_is_refused(
    tmp_path: Path, fake_bcs_dev: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = planted(tmp_path, state(fake_bcs_dev))
    owner = path.stat().st_uid
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)
    assert refusal(path) == f"it belongs to uid {owner}, not to you"


@pytest.mark.parametrize("content", ["", "[]", '{"pid": 5}', "not json", '{"pid": "1", "x": 2}'])
def test_a_file_that_is_not_a_state_file_is_refused(tmp_path: Path, content: str) -> None:
    assert refusal(planted(tmp_path, content)) == "it is not a bcs-dev state file"


@given(st.ip_addresses())
def test_loopback_is_127_0_0_0_8_and_1(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    host = str(address)
    assert is_loopback_host(host) is address.is_loopback
    shown = f"[{host}]" if address.version == 6 else host
    assert is_loopback_url(f"http://{shown}:4002") is address.is_loopback


@given(st.from_regex(r"[a-z][a-z0-9.-]{0,30}", fullmatch=True))
def test_no_host_name_but_localhost_is_loopback(name: str) -> None:
    assert is_loopback_host(name) is (name == "localhost")
