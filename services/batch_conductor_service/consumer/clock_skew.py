"""Refuses events stamped too far in the future.

A batch outcome with a later time wins over one with an earlier time, so an outcome stamped
in year 2999 would outrank every real outcome that follows and freeze its step. No producer's
clock is that wrong: an event further ahead of ours than the allowed skew is dead-lettered.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from batch_conductor_service.consumer.fetched_batch import BadMessage, GoodMessage
from batch_conductor_service.consumer.translation import UnprocessableEventError
from common_core.events import DeadLetterReason


def split_by_clock(
    good: Sequence[GoodMessage], now: datetime, max_skew: timedelta
) -> tuple[list[GoodMessage], list[BadMessage]]:
    """The messages stamped at most `max_skew` after `now`, and the others as dead letters."""
    latest = now + max_skew
    in_time: list[GoodMessage] = []
    future: list[BadMessage] = []
    for item in good:
        stamped = item.event.change.occurred_at
        if stamped <= latest:
            in_time.append(item)
            continue
        error = UnprocessableEventError(
            DeadLetterReason.TIMESTAMP_IN_FUTURE,
            f"event_timestamp {stamped.isoformat()} is more than "
            f"{max_skew.total_seconds():g}s after this service's clock ({now.isoformat()})",
            item.event.correlation_id,
        )
        future.append(BadMessage(item.message, error))
    return in_time, future
