from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """The contract reads naive timestamps as UTC; aware ones are converted to UTC, so every
    store compares and spells one instant one way (and asyncpg never reads local time)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
