import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import structlog

CORRELATION_ID_KEY = "correlation_id"


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def configure_logging(level: str = "INFO", service_name: str | None = None) -> None:
    """JSON lines on stdout; stdlib loggers (hypercorn, aiokafka) go through the same renderer."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if service_name:
        shared.append(_add_service(service_name))
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_orjson_dumps),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())


def _add_service(name: str) -> Any:
    def processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", name)
        return event_dict

    return processor


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


@contextmanager
def bound_context(**values: Any) -> Iterator[None]:
    """Binds values (such as the correlation id) to every log line inside the block."""
    with structlog.contextvars.bound_contextvars(**values):
        yield


def bind_log_context(**values: Any) -> None:
    """Binds values to every later log line of this task (a request), until cleared."""
    structlog.contextvars.bind_contextvars(**values)


def bind_correlation_id(correlation_id: str) -> None:
    structlog.contextvars.bind_contextvars(**{CORRELATION_ID_KEY: correlation_id})


def clear_log_context() -> None:
    structlog.contextvars.clear_contextvars()
