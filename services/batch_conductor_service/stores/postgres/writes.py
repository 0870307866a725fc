"""The inserts that add facts to the record. Each only adds rows (ON CONFLICT DO NOTHING): which
of a batch's reports count is decided by the domain when the batch is read, as for Redis."""

from collections.abc import Sequence
from typing import Any

from batch_conductor_service.domain.batch_facts import BatchFacts
from batch_conductor_service.stores.postgres.schema import AnyConnection
from common_core.timestamps import as_utc


async def insert_facts(
    conn: AnyConnection, schema: str, facts: Sequence[BatchFacts], timeout_seconds: float
) -> None:
    """`schema` comes quoted. Rows go in sorted order, so concurrent writers take row locks in
    the same order and do not deadlock."""
    roster_sources = sorted({(f.batch_id, source.value) for f in facts for source in f.rosters})
    roster_members = sorted(
        {
            (f.batch_id, source.value, essay_id)
            for f in facts
            for source, ids in f.rosters.items()
            for essay_id in ids
        }
    )
    essay_reports = sorted(
        {
            (f.batch_id, step, essay_id, succeeded)
            for f in facts
            for succeeded, by_step in ((True, f.succeeded), (False, f.failed))
            for step, ids in by_step.items()
            for essay_id in ids
        }
    )
    outcome_reports = sorted(
        {
            (f.batch_id, step, outcome.status.value, as_utc(outcome.occurred_at))
            for f in facts
            for step, outcome in f.outcomes.items()
        }
    )
    inserts = (
        ("rosters (batch_id, source)", "text, text", roster_sources),
        ("roster_essays (batch_id, source, essay_id)", "text, text, text", roster_members),
        (
            "essay_outcome_reports (batch_id, step, essay_id, succeeded)",
            "text, text, text, boolean",
            essay_reports,
        ),
        (
            "batch_outcome_reports (batch_id, step, status, occurred_at)",
            "text, text, text, timestamptz",
            outcome_reports,
        ),
    )
    for table, types, rows in inserts:
        if not rows:
            continue
        arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types.split(", "), start=1))
        await conn.execute(
            f"INSERT INTO {schema}.{table} SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING",
            *_columns(rows),
            timeout=timeout_seconds,
        )


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]
