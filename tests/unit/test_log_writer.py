"""Log lines go out one write per turn of the event loop, in the order they were logged; a line
at ERROR or above, or one logged outside a running loop, goes out at once with what waits."""

import asyncio
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest

from huleedu_service_libs.logging_utils import configure_logging, get_logger

pytestmark = pytest.mark.usefixtures("restore_logging")


class RecordingStdout:
    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def events(self) -> list[list[str]]:
        """Per write, the events of the lines it held."""
        return [[json.loads(line)["event"] for line in w.splitlines()] for w in self.writes]


@contextmanager
def recorded() -> Iterator[RecordingStdout]:
    # Installed in the test itself: pytest puts its own capture back on sys.stdout between a
    # fixture's set-up and the test.
    configure_logging("INFO")
    recording = RecordingStdout()
    with mock.patch.object(sys, "stdout", recording):
        yield recording


async def test_lines_of_one_turn_go_out_in_one_write_before_the_next_turn() -> None:
    with recorded() as stdout:
        logger = get_logger("t")
        logger.info("first")
        logger.info("second")
        logger.warning("third")
        await asyncio.sleep(0)
        logger.info("fourth")
        await asyncio.sleep(0)
        assert stdout.events() == [["first", "second", "third"], ["fourth"]]


async def test_an_error_goes_out_at_once_after_what_waits() -> None:
    with recorded() as stdout:
        logger = get_logger("t")
        logger.info("before")
        logger.error("failed")
        assert stdout.events() == [["before", "failed"]]


async def test_stdlib_lines_keep_their_place() -> None:
    with recorded() as stdout:
        get_logger("t").info("ours")
        logging.getLogger("library").warning("theirs")
        get_logger("t").info("ours again")
        await asyncio.sleep(0)
        assert [event for write in stdout.events() for event in write] == [
            "ours",
            "theirs",
            "ours again",
        ]


def test_outside_a_running_loop_a_line_goes_out_at_once() -> None:
    with recorded() as stdout:
        get_logger("t").info("at start-up")
        assert stdout.events() == [["at start-up"]]


def test_lines_left_by_a_loop_that_stopped_go_out_before_the_next() -> None:
    with recorded() as stdout:

        async def log_and_stop(event: str) -> None:
            get_logger("t").info(event)
            asyncio.get_running_loop().stop()  # the loop ends before its next turn

        for event in ("left waiting", "next loop"):
            loop = asyncio.new_event_loop()
            try:
                task = loop.create_task(log_and_stop(event))
                loop.run_forever()
                assert task.done()
            finally:
                loop.close()
        get_logger("t").info("outside")
        assert [event for write in stdout.events() for event in write] == [
            "left waiting",
            "next loop",
            "outside",
        ]
