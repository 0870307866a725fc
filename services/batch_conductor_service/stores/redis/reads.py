"""A batch's sets read from Redis in one round trip, and their members parsed into its
BatchFacts."""

from typing import Any

from batch_conductor_service.domain.batch_facts import BatchFacts, latest_per_step
from batch_conductor_service.domain.batch_state import RosterSource
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.redis.client import BatchStateRedis
from batch_conductor_service.stores.redis.errors import STORE
from batch_conductor_service.stores.redis.integrity import held_markers, lost_sets, report_lost
from batch_conductor_service.stores.redis.keys import (
    LAST_EVENT_MEMBER,
    PRESENT_MARKER,
    ROSTER_MARKER,
    BatchKeys,
    essays_by_step,
    event_time_from_score,
    parse_outcome_members,
)
from huleedu_service_libs.log_bounds import clip
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)


async def read_batch_sets(client: BatchStateRedis, keys: BatchKeys) -> list[Any]:
    # One MULTI/EXEC, so the sets are a consistent view of the batch. Event ids are left out:
    # reads do not need them.
    async with client.pipeline(transaction=True) as pipe:
        pipe.sismember(keys.events, PRESENT_MARKER)
        for key in (
            keys.roster(RosterSource.REGISTERED),
            keys.roster(RosterSource.READY),
            keys.succeeded,
            keys.failed,
            keys.outcomes,
        ):
            # Not pipe.smembers: it adds a `keys` option that redis-py 8.1's cluster
            # transaction passes on to the SMEMBERS reply parser, which rejects it.
            pipe.execute_command("SMEMBERS", key)
        pipe.execute_command("ZSCORE", keys.last_event, LAST_EVENT_MEMBER)
        pipe.execute_command("SMISMEMBER", keys.events, *held_markers(keys))
        pipe.execute_command("SCARD", keys.events)
        replies: list[Any] = await pipe.execute()
        return replies


def event_count_from_sets(replies: list[Any]) -> int:
    """How many event ids the events set holds: its size less the markers in it."""
    present, held, size = replies[0], replies[7], replies[8]
    return int(size) - int(bool(present)) - sum(int(bool(h)) for h in held)


def facts_from_sets(keys: BatchKeys, replies: list[Any], metrics: BcsMetrics) -> BatchFacts | None:
    """None when Redis does not hold the batch in full: never written, expired, or some of
    its sets lost (integrity.py)."""
    present, registered, ready, succeeded, failed, outcomes, last_event_score, held, _ = replies
    if not present:
        return None
    lost = lost_sets(keys, held, [registered, ready, succeeded, failed, outcomes])
    if lost:
        report_lost(metrics, keys, lost)
        return None
    rosters: dict[RosterSource, frozenset[str]] = {}
    for source, ids in ((RosterSource.REGISTERED, registered), (RosterSource.READY, ready)):
        # A set without the marker but with members was written before the marker existed.
        if ids:
            ids.discard(ROSTER_MARKER)
            rosters[source] = frozenset(ids)
    succeeded_by_step, bad_succeeded = essays_by_step(succeeded)
    failed_by_step, bad_failed = essays_by_step(failed)
    parsed_outcomes, bad_outcomes = parse_outcome_members(outcomes)
    for key, bad in (
        (keys.succeeded, bad_succeeded),
        (keys.failed, bad_failed),
        (keys.outcomes, bad_outcomes),
    ):
        if bad:
            _skip_unparsed(metrics, key, bad)
    return BatchFacts(
        batch_id=keys.batch_id,
        rosters=rosters,
        succeeded=succeeded_by_step,
        failed=failed_by_step,
        outcomes=latest_per_step(parsed_outcomes),
        last_event_at=event_time_from_score(last_event_score),
    )


def _skip_unparsed(metrics: BcsMetrics, key: str, members: list[str]) -> None:
    report_unparsed(metrics, key, len(members), first=repr(members[0]))


def report_unparsed(metrics: BcsMetrics, key: str, count: int, **detail: str) -> None:
    # One corrupt member must not make every read of its batch fail; it is left out of the
    # answer, and reported each time until someone removes it.
    metrics.repository_errors.labels(STORE, "parse").inc(count)
    logger.warning(
        "unparsable_redis_members_skipped",
        key=clip(key),
        count=count,
        **{name: clip(value) for name, value in detail.items()},
    )
