"""`bcs-dev`: the service with everything a newcomer lacks.

Unless BCS_KAFKA_BOOTSTRAP_SERVERS is set, it starts the embedded broker and points the
service at it; unless a repository was chosen (BCS_USE_MOCK_REPOSITORY, BCS_ENVIRONMENT or
BCS_REDIS_URL), it selects the in-memory one. The service itself is started unchanged, and
stopped before the broker it uses.
"""

import argparse
import os
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType

from batch_conductor_service import SERVICE_NAME, service_version
from batch_conductor_service.cli.serve import EXIT_BAD_SETTING, bind_or_exit, serve_or_exit
from batch_conductor_service.dev.embedded_broker import EmbeddedBroker
from batch_conductor_service.dev.settings import DevSettings, load_dev_settings
from batch_conductor_service.dev.state import DevRunState
from batch_conductor_service.wiring.settings import Settings, SettingsError
from huleedu_service_libs.logging_utils import configure_logging, get_logger

_REPOSITORY_CHOICES = ("BCS_USE_MOCK_REPOSITORY", "BCS_ENVIRONMENT", "BCS_REDIS_URL")

logger = get_logger("batch_conductor_service.dev")


DESCRIPTION = """\
The service (`bcs`) with everything a newcomer lacks. Unless BCS_KAFKA_BOOTSTRAP_SERVERS is set,
it starts the bundled Kafka-compatible broker on BCS_DEV_BROKER_PORT (default 19092; another
free port when that one is taken; 0 for any) and stops it on exit. Unless BCS_USE_MOCK_REPOSITORY,
BCS_ENVIRONMENT or BCS_REDIS_URL is set, it keeps batch state in memory. It writes the broker
and service it started to BCS_DEV_STATE_FILE (default .bcs-dev.json), where bcs-demo and bcs
find them. Every other BCS_* variable is the service's own (README.md, "Settings")."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bcs-dev",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {service_version()}")
    return parser


def _exit_cleanly(signum: int, _frame: FrameType | None) -> None:
    # Until the service installs its own handlers, a signal still stops the broker on exit.
    raise SystemExit(0)


def _service_url(settings: Settings, listener: socket.socket) -> str:
    host = settings.HTTP_HOST
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    host = f"[{host}]" if ":" in host else host
    # The port bound, which BCS_HTTP_PORT=0 leaves to the system.
    return f"http://{host}:{listener.getsockname()[1]}"


def _start_broker(dev: DevSettings) -> EmbeddedBroker:
    try:
        broker = EmbeddedBroker.start(dev.DEV_BROKER_PORT)
    except (ImportError, RuntimeError, OSError) as exc:
        print(f"bcs-dev: cannot start the embedded broker: {exc}", file=sys.stderr)
        sys.exit(1)
    os.environ["BCS_KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
    logger.info("embedded_broker_started", bootstrap_servers=broker.bootstrap_servers)
    return broker


def main(argv: Sequence[str] | None = None) -> None:
    # Before anything else: --help and --version answer without starting anything.
    build_parser().parse_args(argv)
    try:
        dev = load_dev_settings()
    except SettingsError as exc:
        print(f"bcs-dev: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_SETTING)
    configure_logging(os.environ.get("BCS_LOG_LEVEL", "INFO"), SERVICE_NAME)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    broker = None if os.environ.get("BCS_KAFKA_BOOTSTRAP_SERVERS") else _start_broker(dev)
    if not any(os.environ.get(name) for name in _REPOSITORY_CHOICES):
        os.environ["BCS_USE_MOCK_REPOSITORY"] = "true"
        logger.info(
            "in_memory_repository_selected",
            reason="no BCS_USE_MOCK_REPOSITORY, BCS_ENVIRONMENT or BCS_REDIS_URL set",
        )
    state: DevRunState | None = None
    try:
        # The port is bound before the state file is written: a second bcs-dev on a taken port
        # exits here and leaves the running one's file as it was.
        settings, listener = bind_or_exit()
        state = DevRunState(
            pid=os.getpid(),
            broker_pid=None if broker is None else broker.process.pid,
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            service_url=_service_url(settings, listener),
        )
        try:
            state.write(dev.DEV_STATE_FILE)
        except OSError as exc:
            logger.warning("dev_state_not_written", path=str(dev.DEV_STATE_FILE), error=str(exc))
        print(
            f"bcs-dev: starting the service on {state.service_url} "
            f"(broker {state.bootstrap_servers}). In another terminal: `make demo`; "
            "`.venv/bin/bcs --help` lists the operator's commands.",
            file=sys.stderr,
        )
        serve_or_exit(settings, listener)
    finally:
        if state is not None:
            state.remove(dev.DEV_STATE_FILE)
        if broker is not None:
            broker.stop()
            logger.info("embedded_broker_stopped")


if __name__ == "__main__":
    main()
