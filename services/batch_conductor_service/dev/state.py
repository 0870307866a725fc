"""What a running `bcs-dev` started, in a file beside it, so that `bcs-demo` and `bcs dlq` reach
the broker and service it actually started (another port when 19092 was taken)."""

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


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
        """The state of a bcs-dev that is still running; None for no file, an unreadable one,
        or one a killed bcs-dev left behind."""
        try:
            state = cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        return state if _is_running(state.pid) else None


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
