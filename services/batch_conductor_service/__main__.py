"""`bcs` / `python -m batch_conductor_service`: validate settings and pipelines, then serve."""

import asyncio
import logging
import signal
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config

from batch_conductor_service import SERVICE_NAME
from batch_conductor_service.domain.step_graph import PipelineConfigError
from batch_conductor_service.wiring.app import create_app
from batch_conductor_service.wiring.settings import Settings, SettingsError, load_settings
from huleedu_service_libs.logging_utils import configure_logging, get_logger

logger = get_logger(SERVICE_NAME)


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    host = f"[{settings.HTTP_HOST}]" if ":" in settings.HTTP_HOST else settings.HTTP_HOST
    config.bind = [f"{host}:{settings.HTTP_PORT}"]
    config.graceful_timeout = settings.SHUTDOWN_TIMEOUT_SECONDS
    config.accesslog = None
    # Hypercorn logs through the root handler, so its lines are JSON like ours.
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


async def serve_until_signalled(settings: Settings) -> None:
    app = create_app(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    logger.info("serving", host=settings.HTTP_HOST, port=settings.HTTP_PORT)
    await serve(app, hypercorn_config(settings), shutdown_trigger=stop.wait)


def _run(settings: Settings) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent only on unsupported platforms
        asyncio.run(serve_until_signalled(settings))
    else:
        uvloop.run(serve_until_signalled(settings))


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"bcs: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.LOG_LEVEL, SERVICE_NAME)
    try:
        _run(settings)
    except PipelineConfigError as exc:
        logger.critical("invalid_pipeline_configuration", error=str(exc))
        print(f"bcs: invalid pipeline configuration: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        logger.critical("startup_failed", error=str(exc), exc_info=True)
        print(f"bcs: start-up failed: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
