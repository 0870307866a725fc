"""aiokafka's repeated lines are rate-limited: a few per message per minute, then one line with
the count of the rest. A fake clock drives the windows."""

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from huleedu_service_libs.log_rate_limit import RepeatLimiter, Suppressed, log_suppressed
from huleedu_service_libs.logging_utils import configure_logging


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(
    name: str, template: str, *args: object, level: int = logging.ERROR
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, template, args, None)


def limiter(clock: FakeClock, reports: list[Suppressed]) -> RepeatLimiter:
    return RepeatLimiter(reports.append, per_window=3, window_seconds=60.0, clock=clock)


def test_a_broker_outage_storm_becomes_a_few_lines_a_minute_and_a_count() -> None:
    clock, reports = FakeClock(), []
    limit = limiter(clock, reports)
    # The outage as measured: 22,303 lines in six minutes, one message naming changing nodes.
    passed = 0
    for i in range(22_303):
        clock.now = 1000.0 + i * 360.0 / 22_303
        passed += limit.filter(record("aiokafka.conn", "Unable connect to node %s: %s", i % 3, "x"))
    assert passed == 3 * 6
    # Each window that ended said what it held back; the last one is still open.
    assert len(reports) == 5
    assert {(r.logger, r.message) for r in reports} == {
        ("aiokafka.conn", "Unable connect to node %s: %s")
    }
    clock.now += 60.0
    limit.filter(record("aiokafka.cluster", "anything"))
    assert passed + sum(r.count for r in reports) == 22_303


def test_other_loggers_and_other_messages_are_never_held_back() -> None:
    clock, reports = FakeClock(), []
    limit = limiter(clock, reports)
    for _ in range(50):
        assert limit.filter(record("hypercorn.error", "same line"))
        assert limit.filter(record("aiokafkaesque", "same line"))
        assert limit.filter(record("batch_conductor_service.x", "same line"))
    for template in (f"message {n}" for n in range(50)):
        assert limit.filter(record("aiokafka.consumer.fetcher", template))
    assert reports == []


# One step: which logger and message, and how far the clock moves first.
steps = st.lists(
    st.tuples(
        st.sampled_from(["aiokafka", "aiokafka.conn", "aiokafka.consumer.group_coordinator"]),
        st.sampled_from(["Unable connect to %s", "Heartbeat failed: %s", "Coordinator dead"]),
        st.floats(min_value=0.0, max_value=45.0),
    ),
    max_size=300,
)


@given(steps=steps)
def test_every_line_is_written_or_counted_and_no_window_passes_more_than_its_share(
    steps: list[tuple[str, str, float]],
) -> None:
    clock, reports = FakeClock(), []
    limit = limiter(clock, reports)
    sent: Counter[tuple[str, str]] = Counter()
    passed: Counter[tuple[str, str]] = Counter()
    window_start: dict[tuple[str, str], float] = {}
    in_window: Counter[tuple[str, str]] = Counter()
    for name, template, advance in steps:
        clock.now += advance
        key = (name, template)
        if key not in window_start or clock.now - window_start[key] >= 60.0:
            window_start[key], in_window[key] = clock.now, 0
        sent[key] += 1
        if limit.filter(record(name, template, "arg")):
            passed[key] += 1
            in_window[key] += 1
        assert in_window[key] <= 3
    # A later line, after every window, has the last counts written.
    clock.now += 61.0
    limit.filter(record("aiokafka.other", "late"))
    counted: Counter[tuple[str, str]] = Counter()
    for report in reports:
        counted[(report.logger, report.message)] += report.count
        assert report.count > 0
    for key, total in sent.items():
        assert passed[key] + counted[key] == total, key


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_limits_aiokafkas_lines_and_no_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "bcs")
    capsys.readouterr()
    try:
        for node in range(100):
            logging.getLogger("aiokafka.conn").error("Unable connect to node %s", node)
            logging.getLogger("hypercorn.error").error("the same line %s", node)
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    finally:
        logging.getLogger().handlers.clear()
    by_logger = Counter(line["logger"] for line in lines)
    assert by_logger["aiokafka.conn"] == 3
    assert by_logger["hypercorn.error"] == 100
    assert lines[0]["event"] == "Unable connect to node 0"


@pytest.mark.usefixtures("restore_logging")
def test_the_count_is_one_json_line_naming_the_logger_and_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "bcs")
    capsys.readouterr()
    log_suppressed(Suppressed("aiokafka.conn", "Unable connect to node %s", 4711, 60.0))
    [line] = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert line["event"] == "repeated_log_lines_suppressed"
    assert line["level"] == "warning"
    assert (line["source_logger"], line["message_template"]) == (
        "aiokafka.conn",
        "Unable connect to node %s",
    )
    assert (line["suppressed"], line["window_seconds"]) == (4711, 60.0)


class FakeTimers:
    """Stands in for the event loop's call_later: keeps each timer for the test to run."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> bool:
        self.pending.append((self.clock.now + delay, callback))
        return True

    def run_due(self) -> None:
        due = sorted((p for p in self.pending if p[0] <= self.clock.now), key=lambda p: p[0])
        self.pending = [p for p in self.pending if p[0] > self.clock.now]
        for _, callback in due:
            callback()


def timed_limiter(clock: FakeClock, reports: list[Suppressed], timers: FakeTimers) -> RepeatLimiter:
    return RepeatLimiter(
        reports.append, per_window=3, window_seconds=60.0, clock=clock, schedule=timers
    )


def test_a_storm_that_simply_stops_has_its_count_written_when_its_window_ends() -> None:
    clock, reports = FakeClock(), []
    timers = FakeTimers(clock)
    limit = timed_limiter(clock, reports, timers)
    for i in range(10):
        clock.now = 1000.0 + i
        limit.filter(record("aiokafka.conn", "Unable connect to node %s", i))
    # Then silence: no further line of any logger.
    assert [due for due, _ in timers.pending] == [1060.0]
    clock.now = 1059.0
    timers.run_due()
    assert reports == []

    clock.now = 1060.0
    timers.run_due()

    assert reports == [Suppressed("aiokafka.conn", "Unable connect to node %s", 7, 60.0)]
    assert timers.pending == []


def test_one_timer_at_a_time_each_window_reported_once_in_order() -> None:
    clock, reports = FakeClock(), []
    timers = FakeTimers(clock)
    limit = timed_limiter(clock, reports, timers)
    for _ in range(5):
        limit.filter(record("aiokafka.conn", "first"))
    clock.now += 30.0
    for _ in range(4):
        limit.filter(record("aiokafka.consumer", "second"))
    assert len(timers.pending) == 1

    clock.now += 30.0
    timers.run_due()
    assert reports == [Suppressed("aiokafka.conn", "first", 2, 60.0)]
    # The timer set the next for the window still holding lines back.
    assert [due for due, _ in timers.pending] == [clock.now + 30.0]
    # A line reporting first leaves the timer nothing to say.
    clock.now += 30.0
    limit.filter(record("aiokafka.other", "third"))
    timers.run_due()
    assert reports == [
        Suppressed("aiokafka.conn", "first", 2, 60.0),
        Suppressed("aiokafka.consumer", "second", 1, 60.0),
    ]
    assert timers.pending == []


@given(steps=steps)
def test_with_timers_every_line_is_written_or_counted_once(
    steps: list[tuple[str, str, float]],
) -> None:
    clock, reports = FakeClock(), []
    timers = FakeTimers(clock)
    limit = timed_limiter(clock, reports, timers)
    sent: Counter[tuple[str, str]] = Counter()
    passed: Counter[tuple[str, str]] = Counter()
    for name, template, advance in steps:
        clock.now += advance
        timers.run_due()
        sent[(name, template)] += 1
        passed[(name, template)] += limit.filter(record(name, template))
    # No line after the last: the timers alone report what is left.
    clock.now += 61.0
    timers.run_due()
    counted: Counter[tuple[str, str]] = Counter()
    for report in reports:
        counted[(report.logger, report.message)] += report.count
    assert passed + counted == sent
    assert timers.pending == []


async def test_by_default_the_timer_runs_on_the_event_loop_that_logged() -> None:
    reports: list[Suppressed] = []
    reported = asyncio.Event()

    def report(suppressed: Suppressed) -> None:
        reports.append(suppressed)
        reported.set()

    limit = RepeatLimiter(report, per_window=1, window_seconds=0.05)
    for _ in range(3):
        limit.filter(record("aiokafka.conn", "same"))

    await asyncio.wait_for(reported.wait(), 10.0)
    assert reports == [Suppressed("aiokafka.conn", "same", 2, 0.05)]


def test_without_an_event_loop_the_next_line_reports_as_before() -> None:
    clock, reports = FakeClock(), []
    limit = RepeatLimiter(reports.append, per_window=1, window_seconds=60.0, clock=clock)
    for _ in range(3):
        limit.filter(record("aiokafka.conn", "same"))
    clock.now += 60.0
    limit.filter(record("aiokafka.conn", "other"))
    assert reports == [Suppressed("aiokafka.conn", "same", 2, 60.0)]
