"""What every parking lot (the stores' places for results that named no batch) shares: how a
parked result is spelled, and what /healthz says of the lot."""

from datetime import datetime

import orjson

from batch_conductor_service.domain.batch_state import ParkedResult
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.health import ComponentHealth, HealthState
from common_core.timestamps import as_utc


def encode_parked(result: ParkedResult) -> str:
    return orjson.dumps(
        {
            "event_id": result.event_id,
            "essay_id": result.essay_id,
            "step": result.step,
            "succeeded": result.succeeded,
            "occurred_at": result.occurred_at.isoformat(),
        }
    ).decode()


def decode_parked(text: str | bytes) -> ParkedResult | None:
    """None for a value this version cannot read (written by another, or damaged): skipping it
    loses one result's placement; failing would stop the consumer for good."""
    try:
        fields = orjson.loads(text)
        return ParkedResult(
            event_id=str(fields["event_id"]),
            essay_id=str(fields["essay_id"]),
            step=str(fields["step"]),
            succeeded=bool(fields["succeeded"]),
            occurred_at=as_utc(datetime.fromisoformat(fields["occurred_at"])),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def parking_health(parked: int, max_parked: int) -> ComponentHealth:
    """Degraded while the lot is full: results that name no batch are then dead-lettered."""
    detail = {"parked_results": parked, "max_parked_results": max_parked}
    if parked >= max_parked:
        return ComponentHealth(HealthState.DEGRADED, {**detail, "full": True})
    return ComponentHealth(HealthState.OK, detail)


def parking_unknown(exc: StateStoreUnavailableError) -> ComponentHealth:
    """The lot's store cannot be asked: its own entry in /healthz says why."""
    return ComponentHealth(HealthState.DEGRADED, {"error": str(exc)})
