"""A logging filter that keeps a library's repeated lines from flooding the log.

With the broker down, aiokafka writes the same ERROR line thousands of times (22,303 lines,
4.7 MB, in six minutes). Each message, by logger and message template (the arguments aside),
passes a few times per window; the rest are counted, and once the window is over one line says
how many were suppressed: with the next such line, or when the window ends if no line comes
(a storm that simply stops), from a timer on the event loop that logged it.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from huleedu_service_libs.log_bounds import clip


@dataclass(frozen=True, slots=True)
class Suppressed:
    """What one window held back of one message."""

    logger: str
    message: str
    count: int
    window_seconds: float


@dataclass(slots=True)
class _Window:
    started: float
    passed: int = 0
    suppressed: int = 0


# Runs `callback` after `delay` seconds; False when it cannot (then a later record reports).
Schedule = Callable[[float, Callable[[], None]], bool]


def on_running_loop(delay: float, callback: Callable[[], None]) -> bool:
    """A timer on the event loop of this thread (aiokafka logs from it), if one runs."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    loop.call_later(delay, callback)
    return True


class RepeatLimiter(logging.Filter):
    """For records of the loggers named by `prefixes` (and their children): each message passes
    `per_window` times per `window_seconds`, then is counted. The count of a window that held
    some back goes to `report` with the first such record after the window ends, or when the
    window ends (`schedule`), whichever comes first."""

    def __init__(
        self,
        report: Callable[[Suppressed], None],
        *,
        prefixes: tuple[str, ...] = ("aiokafka",),
        per_window: int = 3,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        schedule: Schedule = on_running_loop,
    ) -> None:
        super().__init__()
        self._report = report
        self._names = prefixes
        self._children = tuple(f"{prefix}." for prefix in prefixes)
        self._per_window = per_window
        self._window_seconds = window_seconds
        self._clock = clock
        self._schedule = schedule
        self._windows: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()
        # Whether a timer will end the earliest window that holds lines back.
        self._timer_set = False

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name not in self._names and not name.startswith(self._children):
            return True
        # The template, not the formatted line: the same failure names a different node or
        # attempt each time.
        message = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        now = self._clock()
        with self._lock:
            ended = self._end_windows(now)
            window = self._windows.get((name, message))
            if window is None:
                window = self._windows[(name, message)] = _Window(now)
            passes = window.passed < self._per_window
            if passes:
                window.passed += 1
            else:
                window.suppressed += 1
            # Windows open in time order, so a timer already set ends an earlier one; the
            # timer sets the next when it runs.
            timer_due = None if passes or self._timer_set else self._due(window, now)
            self._timer_set = self._timer_set or timer_due is not None
        for suppressed in ended:
            self._report(suppressed)
        if timer_due is not None:
            self._set_timer(timer_due)
        return passes

    def flush(self) -> None:
        """Reports the windows that are over; the timer's callback."""
        now = self._clock()
        with self._lock:
            self._timer_set = False
            ended = self._end_windows(now)
            holding = [w for w in self._windows.values() if w.suppressed]
            timer_due = min(self._due(w, now) for w in holding) if holding else None
            self._timer_set = timer_due is not None
        for suppressed in ended:
            self._report(suppressed)
        if timer_due is not None:
            self._set_timer(timer_due)

    def _due(self, window: _Window, now: float) -> float:
        return max(0.0, window.started + self._window_seconds - now)

    def _set_timer(self, delay: float) -> None:
        if not self._schedule(delay, self.flush):
            with self._lock:
                self._timer_set = False

    def _end_windows(self, now: float) -> list[Suppressed]:
        """Forgets every window that is over; what those held back, to be reported."""
        over = [key for key, w in self._windows.items() if now - w.started >= self._window_seconds]
        ended = []
        for key in over:
            window = self._windows.pop(key)
            if window.suppressed:
                ended.append(Suppressed(*key, window.suppressed, self._window_seconds))
        return ended


def log_suppressed(suppressed: Suppressed) -> None:
    """The one line for what a window held back (through structlog: not back into the filter)."""
    structlog.get_logger(__name__).warning(
        "repeated_log_lines_suppressed",
        source_logger=suppressed.logger,
        message_template=clip(suppressed.message, 300),
        suppressed=suppressed.count,
        window_seconds=suppressed.window_seconds,
    )
