"""What a running `bcs-dev` started, in a file beside it, so that `bcs-demo` and `bcs dlq` reach
the broker and service it actually started (another port when 19092 was taken).

The file is read from the working directory, where anyone who can write there could plant one:
it is believed only when it is yours, names addresses of this machine alone, and its pid is a
`bcs-dev` of yours that still runs. Otherwise it is refused, saying why, and the caller must be
told where the service and the broker are."""

import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

# How bcs-dev shows in /proc/<pid>/cmdline: its console script, run by the interpreter its
# shebang names (or exec'd itself), or the module run with -m.
_DEV_SCRIPT = "bcs-dev"
_DEV_MODULE = "batch_conductor_service.dev.run"


class UntrustedDevStateError(Exception):
    """A dev state file is there, but not one a running bcs-dev of this user wrote."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"not using {path}: {why}")


@dataclass(frozen=True, slots=True)
class DevRunState:
    pid: int
    broker_pid: int | None
    bootstrap_servers: str
    service_url: str

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)) + "\n", encoding="utf-8")

    def remove(self, path: Path) -> None:
        """Removes the file while it still holds this state: one that another bcs-dev wrote
        since is that one's to remove."""
        try:
            written = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if written == asdict(self):
            path.unlink(missing_ok=True)

    @classmethod
    def read(cls, path: Path) -> "DevRunState | None":
        """The state of a bcs-dev of this user that still runs; None when there is no file.
        Raises UntrustedDevStateError for any other file."""
        try:
            with path.open("rb") as file:
                # The file opened, not the name: a link of yours to another's file is theirs.
                owner = os.fstat(file.fileno()).st_uid
                text = file.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UntrustedDevStateError(path, f"cannot read it: {exc.strerror}") from None
        if owner != os.getuid():
            raise UntrustedDevStateError(path, f"it belongs to uid {owner}, not to you")
        try:
            state = cls(**json.loads(text))
        except (ValueError, TypeError):
            raise UntrustedDevStateError(path, "it is not a bcs-dev state file") from None
        problem = state._problem()
        if problem is not None:
            raise UntrustedDevStateError(path, problem)
        return state

    def _problem(self) -> str | None:
        if not isinstance(self.service_url, str) or not is_loopback_url(self.service_url):
            return f"its service URL {self.service_url!r} is not on this machine (loopback)"
        if not isinstance(self.bootstrap_servers, str) or not all(
            is_loopback_host(urlsplit(f"//{server.strip()}").hostname)
            for server in self.bootstrap_servers.split(",")
        ):
            return f"its Kafka {self.bootstrap_servers!r} is not on this machine (loopback)"
        return _not_a_running_bcs_dev(self.pid)


def is_loopback_host(host: str | None) -> bool:
    """localhost, 127.0.0.0/8 or ::1."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and is_loopback_host(parts.hostname)


def _not_a_running_bcs_dev(pid: object) -> str | None:
    """Why `pid` is not a bcs-dev of this user that runs, or None when it is one."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return f"its pid {pid!r} cannot be a bcs-dev"
    process = Path(f"/proc/{pid}")
    try:
        owner = process.stat().st_uid
        command_line = (process / "cmdline").read_bytes()
    except FileNotFoundError:
        return f"the bcs-dev that wrote it (pid {pid}) no longer runs"
    except OSError as exc:
        return f"process {pid} cannot be checked: {exc.strerror}"
    if owner != os.getuid():
        return f"process {pid} belongs to uid {owner}, not to you"
    if not _is_bcs_dev([arg.decode(errors="replace") for arg in command_line.split(b"\0")]):
        return f"process {pid} is not a bcs-dev"
    return None


def _is_bcs_dev(argv: list[str]) -> bool:
    if any(Path(arg).name == _DEV_SCRIPT for arg in argv[:2]):
        return True
    return argv[1:3] == ["-m", _DEV_MODULE]
