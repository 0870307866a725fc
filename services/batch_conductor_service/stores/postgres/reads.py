"""A batch's rows read from the record in one consistent view, assembled into its BatchFacts."""

from batch_conductor_service.domain.batch_facts import BatchFacts, group_by_step, latest_per_step
from batch_conductor_service.domain.batch_state import BatchOutcome, RosterSource
from batch_conductor_service.stores.postgres.schema import AnyConnection
from common_core.enums import BatchPhaseStatus


async def read_facts(
    conn: AnyConnection, schema: str, batch_id: str, *, with_event_ids: bool
) -> BatchFacts | None:
    """None when no event of the batch was ever recorded. `schema` comes quoted; the caller
    holds a repeatable-read transaction, so the four reads see one moment."""
    s = schema
    events = await conn.fetch(
        f"SELECT event_id FROM {s}.processed_events WHERE batch_id = $1"
        + ("" if with_event_ids else " LIMIT 1"),
        batch_id,
    )
    if not events:
        return None
    last_event_at = await conn.fetchval(
        f"SELECT max(occurred_at) FROM {s}.processed_events WHERE batch_id = $1", batch_id
    )
    # Two tables each: a replica older than migration 2 writes roster_essays only, one older
    # than migration 3 writes essay_outcomes and batch_outcomes.
    rosters = await conn.fetch(
        f"SELECT source, NULL AS essay_id FROM {s}.rosters WHERE batch_id = $1 "
        f"UNION ALL SELECT source, essay_id FROM {s}.roster_essays WHERE batch_id = $1",
        batch_id,
    )
    essays = await conn.fetch(
        f"SELECT step, essay_id, succeeded FROM {s}.essay_outcome_reports WHERE batch_id = $1 "
        f"UNION ALL SELECT step, essay_id, succeeded FROM {s}.essay_outcomes WHERE batch_id = $1",
        batch_id,
    )
    outcomes = await conn.fetch(
        f"SELECT step, status, occurred_at FROM {s}.batch_outcome_reports WHERE batch_id = $1 "
        f"UNION ALL SELECT step, status, occurred_at FROM {s}.batch_outcomes WHERE batch_id = $1",
        batch_id,
    )
    by_source: dict[RosterSource, set[str]] = {}
    for row in rosters:
        ids = by_source.setdefault(RosterSource(row["source"]), set())
        if row["essay_id"] is not None:
            ids.add(row["essay_id"])
    return BatchFacts(
        batch_id=batch_id,
        rosters={source: frozenset(ids) for source, ids in by_source.items()},
        succeeded=group_by_step((r["step"], r["essay_id"]) for r in essays if r["succeeded"]),
        failed=group_by_step((r["step"], r["essay_id"]) for r in essays if not r["succeeded"]),
        outcomes=latest_per_step(
            (r["step"], BatchOutcome(BatchPhaseStatus(r["status"]), r["occurred_at"]))
            for r in outcomes
        ),
        event_ids=frozenset(r["event_id"] for r in events) if with_event_ids else frozenset(),
        last_event_at=last_event_at,
    )
