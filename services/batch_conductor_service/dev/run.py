"""`bcs-dev`: the service with everything a newcomer lacks.

Unless BCS_KAFKA_BOOTSTRAP_SERVERS is set, it starts the embedded broker and points the
service at it; unless a repository was chosen (BCS_USE_MOCK_REPOSITORY, BCS_ENVIRONMENT or
BCS_REDIS_URL), it selects the in-memory one. The service itself is started unchanged.
"""

import os
import signal
import sys
from types import FrameType

from batch_conductor_service import SERVICE_NAME
from batch_conductor_service.__main__ import main as service_main
from batch_conductor_service.dev.embedded_broker import EmbeddedBroker
from huleedu_service_libs.logging_utils import configure_logging, get_logger

DEFAULT_DEV_BROKER_PORT = 19092
_REPOSITORY_CHOICES = ("BCS_USE_MOCK_REPOSITORY", "BCS_ENVIRONMENT", "BCS_REDIS_URL")

logger = get_logger("batch_conductor_service.dev")


def _exit_cleanly(signum: int, _frame: FrameType | None) -> None:
    # Until the service installs its own handlers, a signal still stops the broker on exit.
    raise SystemExit(0)


def main() -> None:
    configure_logging(os.environ.get("BCS_LOG_LEVEL", "INFO"), SERVICE_NAME)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    broker: EmbeddedBroker | None = None
    if not os.environ.get("BCS_KAFKA_BOOTSTRAP_SERVERS"):
        preferred = int(os.environ.get("BCS_DEV_BROKER_PORT", DEFAULT_DEV_BROKER_PORT))
        try:
            broker = EmbeddedBroker.start(preferred)
        except (ImportError, RuntimeError, OSError) as exc:
            print(f"bcs-dev: cannot start the embedded broker: {exc}", file=sys.stderr)
            sys.exit(1)
        os.environ["BCS_KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        logger.info("embedded_broker_started", bootstrap_servers=broker.bootstrap_servers)
    if not any(os.environ.get(name) for name in _REPOSITORY_CHOICES):
        os.environ["BCS_USE_MOCK_REPOSITORY"] = "true"
        logger.info(
            "in_memory_repository_selected",
            reason="no BCS_USE_MOCK_REPOSITORY, BCS_ENVIRONMENT or BCS_REDIS_URL set",
        )
    try:
        service_main()
    finally:
        if broker is not None:
            broker.stop()
            logger.info("embedded_broker_stopped")


if __name__ == "__main__":
    main()
