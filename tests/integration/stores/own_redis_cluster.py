"""A Redis Cluster of the tests' own: three masters, no replicas, no persistence, on free ports."""

import shutil
import socket
import subprocess
import time
from pathlib import Path

from batch_conductor_service.dev.embedded_broker import free_port

MASTERS = 3


class OwnRedisCluster:
    def __init__(self, server: str, cli: str, workdir: Path) -> None:
        self._server = server
        self._cli = cli
        self._workdir = workdir
        self.ports = [free_port() for _ in range(MASTERS)]
        # The cluster bus would otherwise listen on port + 10000, which may be taken or past
        # 65535; a free port of its own avoids both.
        self._bus_ports = [free_port() for _ in range(MASTERS)]
        self._processes: list[subprocess.Popen[bytes]] = []

    @classmethod
    def binaries(cls) -> tuple[str, str] | None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        return None if server is None or cli is None else (server, cli)

    @property
    def url(self) -> str:
        # Any one node will do: the client discovers the others from it.
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        for port, bus_port in zip(self.ports, self._bus_ports, strict=True):
            self._processes.append(self._start_node(port, bus_port))
        for port, process in zip(self.ports, self._processes, strict=True):
            _wait_for_port(port, process)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [self._cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self._wait_until_ok()

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._processes.clear()

    def _start_node(self, port: int, bus_port: int) -> subprocess.Popen[bytes]:
        log = self._workdir / f"redis-{port}.log"
        return subprocess.Popen(
            [
                self._server,
                "--port",
                str(port),
                "--cluster-port",
                str(bus_port),
                "--logfile",
                str(log),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self._workdir / f"nodes-{port}.conf"),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self._workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _wait_until_ok(self) -> None:
        # `--cluster create` returns once the slots are assigned; every node must also have
        # heard of the others before a client may rely on any of them.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(self._cluster_state(port) == "ok" for port in self.ports):
                return
            time.sleep(0.1)
        raise RuntimeError(f"Redis Cluster on ports {self.ports} did not reach cluster_state:ok")

    def _cluster_state(self, port: int) -> str:
        info = subprocess.run(
            [self._cli, "-p", str(port), "cluster", "info"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        for line in info.splitlines():
            if line.startswith("cluster_state:"):
                return line.split(":", 1)[1].strip()
        return ""


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server on port {port} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"redis-server did not start on port {port}")
