"""Makes the test session the reaper of every process its tests start, so that one left running
when the session ends (an orphaned broker, a service a test forgot) is found, named and killed."""

import contextlib
import ctypes
import os
import signal
import sys
import time
from pathlib import Path

_PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> bool:
    """Orphans of our descendants become our children instead of init's (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0


def live_children() -> dict[int, str]:
    """Our child processes that still run, with their command lines; zombies are reaped."""
    me = os.getpid()
    children: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; the fields follow it.
        state, ppid = text[text.rindex(")") + 2 :].split()[:2]
        if int(ppid) != me:
            continue
        pid = int(stat.parent.name)
        if state == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            continue
        children[pid] = _command_line(pid)
    return children


def left_behind(grace_seconds: float = 10.0) -> dict[int, str]:
    """Children still running after a grace period for those already stopping; each is then
    killed, and returned so the session can fail naming them."""
    deadline = time.monotonic() + grace_seconds
    children = live_children()
    while children and time.monotonic() < deadline:
        time.sleep(0.1)
        children = live_children()
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return children


def _command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()
