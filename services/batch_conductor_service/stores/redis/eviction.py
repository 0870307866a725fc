"""What Redis does when it runs out of memory, read once at start-up and shown in /healthz.

Under any `maxmemory-policy` but `noeviction`, Redis may delete single keys of a batch (every
batch key carries a TTL, so even the `volatile-*` policies can pick them). With PostgreSQL
configured such a loss is detected and repaired (integrity.py); with Redis alone it is a loss of
facts. `noeviction` makes a full Redis refuse writes instead, which the consumer treats as an
outage and retries. Managed Redis often forbids CONFIG: a refusal is shown as such, not an error.
"""

import asyncio
from typing import Any

from redis.exceptions import RedisClusterException, ResponseError

from batch_conductor_service.stores.redis.client import BatchStateRedis
from batch_conductor_service.stores.redis.errors import STORE_ERRORS
from huleedu_service_libs.logging_utils import get_logger

logger = get_logger(__name__)

SAFE_POLICY = "noeviction"
REFUSED = "unknown (CONFIG GET refused)"


async def read_eviction_policy(client: BatchStateRedis, timeout_seconds: float) -> str | None:
    """The policy (on a cluster, the policies of its masters joined by commas), REFUSED when the
    server will not say, or None when it could not be asked now (down): ask again later."""
    try:
        reply = await asyncio.wait_for(client.config_get("maxmemory-policy"), timeout_seconds)
    except ResponseError as exc:
        logger.info("redis_eviction_policy_unknown", reason=str(exc))
        return REFUSED
    except (*STORE_ERRORS, TimeoutError, RedisClusterException) as exc:
        logger.info("redis_eviction_policy_not_read", reason=f"{type(exc).__name__}: {exc}")
        return None
    policies = sorted(_policies(reply))
    if not policies:
        return REFUSED
    policy = ",".join(policies)
    if policy != SAFE_POLICY:
        logger.warning("redis_may_evict_batch_keys", maxmemory_policy=policy)
    return policy


def _policies(reply: Any) -> set[str]:
    # One server: {"maxmemory-policy": "noeviction"}; a cluster may answer per node.
    if not isinstance(reply, dict):
        return set()
    found: set[str] = set()
    for name, value in reply.items():
        if isinstance(value, dict):
            found |= _policies(value)
        elif name == "maxmemory-policy" and isinstance(value, str):
            found.add(value)
    return found


def eviction_detail(policy: str | None) -> dict[str, str]:
    """What /healthz shows about the policy: nothing when it is `noeviction`."""
    if policy == SAFE_POLICY:
        return {}
    return {
        "maxmemory_policy": policy if policy is not None else "not read yet",
        "maxmemory_policy_warning": "not noeviction: Redis may evict single keys of a batch; "
        "with PostgreSQL they are rebuilt, with Redis alone their facts are lost (README)",
    }
