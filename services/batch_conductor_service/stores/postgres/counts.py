"""A batch's counts aggregated by PostgreSQL, for /define when Redis cannot answer: the rows
stay in the database, only a few numbers per step come back."""

from batch_conductor_service.domain.batch_counts import BatchCounts, StepCounts
from batch_conductor_service.domain.batch_facts import latest_per_step
from batch_conductor_service.domain.batch_state import BatchOutcome, RosterSource
from batch_conductor_service.stores.postgres.schema import AnyConnection
from common_core.enums import BatchPhaseStatus

# The READY roster replaces the REGISTERED one; `rosters` has a row even for an empty roster,
# `roster_essays` alone is what a replica older than migration 2 wrote.
_ROSTER_SOURCE = """
    SELECT source FROM (
        SELECT source FROM {s}.rosters WHERE batch_id = $1
        UNION SELECT source FROM {s}.roster_essays WHERE batch_id = $1
    ) known ORDER BY source = '{ready}' DESC LIMIT 1
"""

# One row per essay and step, succeeded when any report says so (a success outranks a failure),
# joined to the chosen roster; both tables, as read_facts reads them.
_STEP_COUNTS = """
    WITH essays AS (
        SELECT step, essay_id, bool_or(succeeded) AS succeeded FROM (
            SELECT step, essay_id, succeeded FROM {s}.essay_outcome_reports WHERE batch_id = $1
            UNION ALL
            SELECT step, essay_id, succeeded FROM {s}.essay_outcomes WHERE batch_id = $1
        ) reports GROUP BY step, essay_id
    ),
    roster AS (
        SELECT DISTINCT essay_id FROM {s}.roster_essays WHERE batch_id = $1 AND source = $2
    )
    SELECT step,
        count(*) FILTER (WHERE succeeded) AS succeeded,
        count(*) FILTER (WHERE NOT succeeded) AS failed,
        count(roster.essay_id) FILTER (WHERE succeeded) AS roster_succeeded,
        count(roster.essay_id) FILTER (WHERE NOT succeeded) AS roster_failed
    FROM essays LEFT JOIN roster USING (essay_id)
    GROUP BY step
"""


async def read_counts(conn: AnyConnection, schema: str, batch_id: str) -> BatchCounts | None:
    """None when no event of the batch was ever recorded. `schema` comes quoted; the caller
    holds a repeatable-read transaction, so the reads see one moment."""
    s = schema
    if not await conn.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {s}.processed_events WHERE batch_id = $1)", batch_id
    ):
        return None
    source = await conn.fetchval(
        _ROSTER_SOURCE.format(s=s, ready=RosterSource.READY.value), batch_id
    )
    roster_size = None
    if source is not None:
        roster_size = await conn.fetchval(
            f"SELECT count(DISTINCT essay_id) FROM {s}.roster_essays "
            "WHERE batch_id = $1 AND source = $2",
            batch_id,
            source,
        )
    steps = await conn.fetch(_STEP_COUNTS.format(s=s), batch_id, source)
    outcomes = await conn.fetch(
        f"SELECT step, status, occurred_at FROM {s}.batch_outcome_reports WHERE batch_id = $1 "
        f"UNION ALL SELECT step, status, occurred_at FROM {s}.batch_outcomes WHERE batch_id = $1",
        batch_id,
    )
    return BatchCounts(
        batch_id=batch_id,
        roster_size=roster_size,
        roster_source=None if source is None else RosterSource(source),
        steps={
            row["step"]: StepCounts(
                succeeded=row["succeeded"],
                failed=row["failed"],
                roster_succeeded=row["roster_succeeded"],
                roster_failed=row["roster_failed"],
            )
            for row in steps
        },
        batch_outcomes=latest_per_step(
            (r["step"], BatchOutcome(BatchPhaseStatus(r["status"]), r["occurred_at"]))
            for r in outcomes
        ),
    )
