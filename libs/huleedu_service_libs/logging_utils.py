import asyncio
import atexit
import logging
import sys
import threading
import time
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict

from huleedu_service_libs.log_rate_limit import RepeatLimiter, log_suppressed
from huleedu_service_libs.trace_context import current_trace_ids

# Off until tracing starts (include_trace_ids): without it no span is ever current, and a line
# should not pay for looking.
_trace_ids_wanted = False


def include_trace_ids(enabled: bool) -> None:
    """Whether lines written while a span is current carry its `trace_id` and `span_id`."""
    global _trace_ids_wanted
    _trace_ids_wanted = enabled


def _add_trace_ids(event_dict: EventDict) -> None:
    ids = current_trace_ids()
    if ids is not None:
        event_dict["trace_id"], event_dict["span_id"] = ids


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def configure_logging(level: str = "INFO", service_name: str | None = None) -> None:
    """JSON lines on stdout. Our own lines are rendered by structlog and written directly; the
    stdlib loggers (hypercorn, aiokafka) go through a logging handler with the same processors,
    so every line has the same fields. A line below `level` is dropped before anything else."""
    structlog.configure(
        processors=[
            _DropBelow(logging.getLevelName(level.upper())),
            # The fields of `shared` and the logger's name in one call: a processor is a call
            # per line, and a request logs two.
            _LineFields(service_name),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_orjson_dumps),
        ],
        # Not through the stdlib's LogRecord and handler machinery: that was most of the cost
        # of a line, and a request logs two.
        logger_factory=_StdoutLogger,
        # Every level passes the wrapper; _DropBelow drops what is under `level` first thing, and
        # structlog.testing.capture_logs (which swaps the processors) still sees every line.
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[_LineFields(service_name), structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_orjson_dumps),
        ],
    )
    handler = logging.StreamHandler(_CurrentStdout())
    handler.setFormatter(formatter)
    # On the handler: a logger's filter would not see its children's (aiokafka.conn, ...) lines.
    # OpenTelemetry's exporter repeats its line on every failed export while a collector is away.
    handler.addFilter(RepeatLimiter(log_suppressed, prefixes=("aiokafka", "opentelemetry")))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())


class _TurnWriter:
    """Writes lines to sys.stdout as it is at the time (tests swap it), one write and flush per
    turn of the event loop: a request logs two lines, and a write with its flush per line was
    most of a line's cost under load. Outside a running loop (start-up, tools, another thread),
    and for a line at ERROR or above, what is pending and the line go out at once, so a crash
    leaves nothing unwritten; otherwise a line waits at most until the loop's next turn."""

    def __init__(self) -> None:
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._flush_scheduled_on: asyncio.AbstractEventLoop | None = None

    def write_line(self, line: str, *, urgent: bool = False) -> None:
        loop = asyncio._get_running_loop()
        if loop is None or urgent:
            self.flush(line)
            return
        with self._lock:
            if self._flush_scheduled_on is not loop:
                if self._pending:  # scheduled on a loop that has stopped since
                    self._write(self._pending)
                    self._pending = []
                loop.call_soon(self.flush)
                self._flush_scheduled_on = loop
            self._pending.append(line)

    def flush(self, also: str | None = None) -> None:
        with self._lock:
            lines, self._pending = self._pending, []
            self._flush_scheduled_on = None
            if also is not None:
                lines.append(also)
            if lines:
                self._write(lines)

    @staticmethod
    def _write(lines: list[str]) -> None:
        stream = sys.stdout
        stream.write("".join(lines))
        stream.flush()


_writer = _TurnWriter()
atexit.register(_writer.flush)


class _CurrentStdout:
    """The stdlib handler's stream: through the same writer, so every line keeps its order."""

    def write(self, text: str) -> int:
        _writer.flush(text)
        return len(text)

    def flush(self) -> None:
        _writer.flush()


class _StdoutLogger:
    """Hands each rendered line to the writer."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        _writer.write_line(message + "\n")

    def urgent(self, message: str) -> None:
        _writer.write_line(message + "\n", urgent=True)

    debug = info = warning = warn = log = msg
    error = critical = exception = fatal = urgent


class _DropBelow:
    """Drops a line under the configured level, first thing."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold

    def __call__(self, _: Any, method_name: str, event_dict: EventDict) -> EventDict:
        if _LEVELS.get(method_name, logging.INFO) < self.threshold:
            raise structlog.DropEvent
        return event_dict


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


# As structlog's add_log_level names them: `warn` is the stdlib's alias, `exception` an error.
_LEVEL_NAMES = {"warn": "warning", "exception": "error"}


class _LineFields:
    """What every line of ours carries: the bound context, level, UTC time, service and logger
    name (the field the stdlib's lines carry theirs in), as the shared processors add them."""

    def __init__(self, service_name: str | None) -> None:
        self.service_name = service_name
        # One tuple, replaced whole: the stdlib's lines (exporter threads) stamp here too.
        self._second: tuple[int, str] = (-1, "")

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        event_dict = structlog.contextvars.merge_contextvars(logger, method_name, event_dict)
        event_dict["level"] = _LEVEL_NAMES.get(method_name, method_name)
        event_dict["timestamp"] = self.stamp(time.time())
        if self.service_name:
            event_dict.setdefault("service", self.service_name)
        name = getattr(logger, "name", None)
        if name is not None:
            event_dict.setdefault("logger", name)
        if _trace_ids_wanted:
            _add_trace_ids(event_dict)
        return event_dict

    def stamp(self, now: float) -> str:
        """ISO 8601 in UTC with microseconds. The part to the second changes once a second, so
        it is formatted once a second."""
        second = int(now)
        cached, text = self._second
        if second != cached:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int((now - second) * 1_000_000):06d}Z"


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger


def bind_log_context(**values: Any) -> None:
    """Binds values to every later log line of this task (a request), until cleared."""
    structlog.contextvars.bind_contextvars(**values)
