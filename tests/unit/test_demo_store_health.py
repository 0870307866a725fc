"""What the demo reads from /healthz: which stores are down, and whether one can go down."""

from typing import Any

import pytest

from batch_conductor_service.dev.store_health import store_can_fail, store_outage

PIPELINES = {"status": "ok", "pipelines": ["nlp"], "steps": ["spellcheck", "nlp"]}
CONSUMER_RETRYING = {"status": "degraded", "state": "retrying", "error": "store down"}
REDIS_DOWN = {"status": "unhealthy", "circuit": "open", "error": "ConnectionError: refused"}


def health(**checks: dict[str, Any]) -> dict[str, Any]:
    return {"status": "?", "checks": {"pipeline_config": PIPELINES, **checks}}


@pytest.mark.parametrize(
    ("answer", "outage"),
    [
        (health(repository={"status": "ok", "backend": "memory"}), None),
        (
            health(redis={"status": "ok", "circuit": "closed"}, kafka_consumer=CONSUMER_RETRYING),
            None,
        ),
        (health(redis=REDIS_DOWN), "redis (ConnectionError: refused)"),
        # Redis + PostgreSQL: the store that is down shows degraded while the other answers.
        (
            health(
                redis={**REDIS_DOWN, "status": "degraded", "unhealthy": True},
                postgresql={"status": "ok", "circuit": "closed"},
            ),
            "redis (ConnectionError: refused)",
        ),
        (
            health(redis=REDIS_DOWN, postgresql={"status": "unhealthy", "error": "timeout"}),
            "redis (ConnectionError: refused); postgresql (timeout)",
        ),
        (health(repository={"status": "unhealthy"}), "repository (unhealthy)"),
        ({"status": "ok"}, None),
    ],
)
def test_the_stores_that_are_down_are_named_with_their_errors(
    answer: dict[str, Any], outage: str | None
) -> None:
    assert store_outage(answer) == outage


def test_only_the_in_memory_store_cannot_fail() -> None:
    assert not store_can_fail(health(repository={"status": "ok", "backend": "memory"}))
    assert store_can_fail(health(redis={"status": "ok"}))
    assert store_can_fail(health(redis={"status": "ok"}, postgresql={"status": "ok"}))
