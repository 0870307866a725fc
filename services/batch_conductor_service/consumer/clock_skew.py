"""Refuses events stamped too far in the future.

A batch outcome with a later time wins over one with an earlier time, so an outcome stamped
in year 2999 would outrank every real outcome that follows and freeze its step. No producer's
clock is that wrong: an event further ahead of ours than the allowed skew is dead-lettered,
whether it names its batch or waits for a roster to place it.
"""

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from batch_conductor_service.consumer.fetched_batch import (
    BadMessage,
    GoodMessage,
    UnplacedMessage,
)
from batch_conductor_service.consumer.translation import UnprocessableEventError
from common_core.events import DeadLetterReason

Item = TypeVar("Item", GoodMessage, UnplacedMessage)


def split_by_clock(
    items: Sequence[Item],
    stamped: Callable[[Item], datetime | None],
    now: datetime,
    max_skew: timedelta,
) -> tuple[list[Item], list[BadMessage]]:
    """The items stamped at most `max_skew` after `now` (or not stamped: nothing to store),
    and the others as dead letters."""
    latest = now + max_skew
    in_time: list[Item] = []
    future: list[BadMessage] = []
    for item in items:
        at = stamped(item)
        if at is None or at <= latest:
            in_time.append(item)
            continue
        error = UnprocessableEventError(
            DeadLetterReason.TIMESTAMP_IN_FUTURE,
            f"event_timestamp {at.isoformat()} is more than "
            f"{max_skew.total_seconds():g}s after this service's clock ({now.isoformat()})",
            item.event.correlation_id,
        )
        future.append(BadMessage(item.message, error))
    return in_time, future


def change_time(item: GoodMessage) -> datetime:
    return item.event.change.occurred_at


def result_time(item: UnplacedMessage) -> datetime | None:
    result = item.event.result
    return None if result is None else result.occurred_at
