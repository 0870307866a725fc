"""Telling a batch Redis holds in full from one that lost some of its keys.

Under an eviction policy other than `noeviction`, or after a failover, single keys of a batch
can go while its events set (and its present marker) stays. The batch would then answer from
part of its facts: losing only the outcomes key of a FAILED_CRITICALLY step turns "run it
again" into "done". Every writer adds a held marker per set of facts to the events set
(BatchKeys.fact_sets, after the set itself); a set that is marked but gone was lost. Such a
batch reads as not held, so the durable combination rebuilds it from PostgreSQL (a union, which
puts back what was lost) and Redis alone answers as if the batch were unknown: nothing pruned.
"""

from collections.abc import Sequence
from typing import Any

from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.redis.errors import STORE
from batch_conductor_service.stores.redis.keys import BatchKeys
from huleedu_service_libs.log_bounds import clip
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)


def held_markers(keys: BatchKeys) -> list[str]:
    return [marker for marker, _ in keys.fact_sets]


def lost_sets(keys: BatchKeys, held: Sequence[Any], present: Sequence[Any]) -> list[str]:
    """The keys marked as held (`held`, per BatchKeys.fact_sets) that are not there
    (`present`, truthy per key: a non-empty reply or EXISTS)."""
    return [
        key
        for (_, key), is_held, is_there in zip(keys.fact_sets, held, present, strict=True)
        if is_held and not is_there
    ]


def report_lost(metrics: BcsMetrics, keys: BatchKeys, lost: Sequence[str]) -> None:
    metrics.repository_errors.labels(STORE, "lost_keys").inc()
    logger.warning("redis_batch_keys_lost", keys=[clip(key) for key in lost])
