"""How a kept result is spelled in Redis and PostgreSQL: compact JSON."""

from datetime import datetime

import orjson

from batch_conductor_service.domain.batch_state import EssayOutcome
from batch_conductor_service.domain.placement import UnplacedResult
from common_core.timestamps import as_utc


def encode_result(result: UnplacedResult) -> str:
    return orjson.dumps(
        {
            "event_id": result.event_id,
            "essay_id": result.essay_id,
            "step": result.step,
            "outcome": result.outcome.value,
            "occurred_at": result.occurred_at.isoformat(),
        }
    ).decode()


def decode_result(text: str | bytes) -> UnplacedResult | None:
    """None for a value this version cannot read (written by another, or damaged): skipping
    it loses one result's placement, failing would stop the consumer for good."""
    try:
        fields = orjson.loads(text)
        return UnplacedResult(
            event_id=str(fields["event_id"]),
            essay_id=str(fields["essay_id"]),
            step=str(fields["step"]),
            outcome=EssayOutcome(fields["outcome"]),
            occurred_at=as_utc(datetime.fromisoformat(fields["occurred_at"])),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
