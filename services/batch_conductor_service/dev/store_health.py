"""Whether the service can store events, from its /healthz: the demo waits for its events to be
consumed, and a service whose store is down would keep it waiting without a word."""

from typing import Any

from batch_conductor_service.cli.targets import call_service

# The /healthz checks of the stores batch state is written to (stores/*: `health_name`).
STORE_CHECKS = ("repository", "redis", "postgresql")


class StoreOutageError(Exception):
    """The service's store is down: what it consumes cannot be stored until it is back."""


def store_outage(health: dict[str, Any]) -> str | None:
    """Each store that is down, with its error; None when every store answers."""
    down = []
    for name, check in health.get("checks", {}).items():
        # A store reported degraded carries "unhealthy" when the other store answers for it.
        if name in STORE_CHECKS and (check.get("status") == "unhealthy" or check.get("unhealthy")):
            down.append(f"{name} ({check.get('error', 'unhealthy')})")
    return "; ".join(down) or None


def store_can_fail(health: dict[str, Any]) -> bool:
    """False for the in-memory store, which cannot go down while the service runs."""
    repository = health.get("checks", {}).get("repository", {})
    return bool(repository.get("backend") != "memory")


def check_store(base_url: str) -> None:
    """Asks /healthz; raises StoreOutageError naming each store that is down."""
    raise_if_store_down(read_health(base_url), base_url)


def raise_if_store_down(health: dict[str, Any], base_url: str) -> None:
    outage = store_outage(health)
    if outage is not None:
        raise StoreOutageError(
            f"the service cannot store events: its store is down: {outage}; see {base_url}/healthz"
        )


def read_health(base_url: str) -> dict[str, Any]:
    """The /healthz answer, which comes with 503 as with 200."""
    health: dict[str, Any] = call_service(f"{base_url}/healthz")[1]
    return health
