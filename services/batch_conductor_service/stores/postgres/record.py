"""The durable record of every batch state change, in PostgreSQL (asyncpg).

Redis holds the projection that answers fast and expires; this record keeps every fact for
good, is written before an event counts as handled, and answers when Redis cannot.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from batch_conductor_service.domain.batch_facts import (
    StoredBatch,
    group_by_step,
)
from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchOutcome,
    BatchStateChange,
    EssayOutcome,
    RosterSource,
)
from batch_conductor_service.health import ComponentHealth, HealthState
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.circuit_breaker import CircuitBreaker, CircuitState
from batch_conductor_service.stores.guarded_call import guarded_store_call
from batch_conductor_service.stores.postgres.schema import AnyConnection, quoted_schema
from common_core.enums import BatchPhaseStatus
from common_core.timestamps import as_utc

STORE = "postgresql"
STORE_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)
# Writers lock rows table by table in key order, so deadlocks should not happen; if the server
# still reports one (or a serialization failure), the whole transaction is simply run again.
_ROLLBACK_ATTEMPTS = 3

T = TypeVar("T")


class PostgresBatchRecord:
    health_name = STORE

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        schema: str,
        metrics: BcsMetrics,
        breaker: CircuitBreaker,
        timeout_seconds: float = 5.0,
        health_timeout_seconds: float = 1.0,
    ) -> None:
        self._pool = pool
        self._schema = quoted_schema(schema)
        self._metrics = metrics
        self._breaker = breaker
        self._timeout = timeout_seconds
        self._health_timeout = health_timeout_seconds

    async def record_many(self, changes: Sequence[BatchStateChange]) -> list[ApplyResult]:
        """Stores the changes whose event ids are new, in one transaction; returns, per change,
        whether its event id was new (a repeat within `changes` is a duplicate too)."""

        async def record() -> list[ApplyResult]:
            retrying = AsyncRetrying(
                stop=stop_after_attempt(_ROLLBACK_ATTEMPTS),
                retry=retry_if_exception_type(asyncpg.exceptions.TransactionRollbackError),
                reraise=True,
            )
            return await retrying(self._record_once, changes)

        return await self._guarded("record", record)

    async def load(self, batch_id: str, *, with_event_ids: bool = True) -> StoredBatch | None:
        """Everything recorded for the batch, or None when no event of it was ever recorded."""

        async def load() -> StoredBatch | None:
            s = self._schema
            async with (
                self._pool.acquire(timeout=self._timeout) as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                events = await conn.fetch(
                    f"SELECT event_id FROM {s}.processed_events WHERE batch_id = $1"
                    + ("" if with_event_ids else " LIMIT 1"),
                    batch_id,
                )
                if not events:
                    return None
                # Both tables: a replica older than migration 2 writes roster_essays only.
                rosters = await conn.fetch(
                    f"SELECT source, NULL AS essay_id FROM {s}.rosters WHERE batch_id = $1 "
                    f"UNION ALL SELECT source, essay_id FROM {s}.roster_essays WHERE batch_id = $1",
                    batch_id,
                )
                essays = await conn.fetch(
                    f"SELECT step, essay_id, succeeded FROM {s}.essay_outcomes WHERE batch_id = $1",
                    batch_id,
                )
                outcomes = await conn.fetch(
                    f"SELECT step, status, occurred_at FROM {s}.batch_outcomes WHERE batch_id = $1",
                    batch_id,
                )
            event_ids = frozenset(r["event_id"] for r in events if with_event_ids)
            by_source: dict[RosterSource, set[str]] = {}
            for row in rosters:
                ids = by_source.setdefault(RosterSource(row["source"]), set())
                if row["essay_id"] is not None:
                    ids.add(row["essay_id"])
            return StoredBatch(
                batch_id=batch_id,
                rosters={source: frozenset(ids) for source, ids in by_source.items()},
                succeeded=group_by_step((r["step"], r["essay_id"]) for r in essays if r[2]),
                failed=group_by_step((r["step"], r["essay_id"]) for r in essays if not r[2]),
                outcomes={
                    r["step"]: BatchOutcome(BatchPhaseStatus(r["status"]), r["occurred_at"])
                    for r in outcomes
                },
                event_ids=event_ids,
            )

        return await self._guarded("load", load)

    async def health(self) -> dict[str, ComponentHealth]:
        detail: dict[str, Any] = {"circuit": self._breaker.state.value}
        try:
            await asyncio.wait_for(self._ping(), self._health_timeout)
        except STORE_ERRORS as exc:
            detail["error"] = f"{type(exc).__name__}: {exc}"
            return {STORE: ComponentHealth(HealthState.UNHEALTHY, detail)}
        if self._breaker.state is not CircuitState.CLOSED:
            return {STORE: ComponentHealth(HealthState.DEGRADED, detail)}
        return {STORE: ComponentHealth(HealthState.OK, detail)}

    async def _ping(self) -> None:
        async with self._pool.acquire(timeout=self._health_timeout) as conn:
            await conn.fetchval("SELECT 1")

    async def _record_once(self, changes: Sequence[BatchStateChange]) -> list[ApplyResult]:
        s = self._schema
        pairs = sorted({(c.batch_id, c.event_id) for c in changes})
        async with (
            self._pool.acquire(timeout=self._timeout) as conn,
            conn.transaction(),
        ):
            inserted = await conn.fetch(
                f"INSERT INTO {s}.processed_events (batch_id, event_id) "
                "SELECT * FROM unnest($1::text[], $2::text[]) "
                "ON CONFLICT DO NOTHING RETURNING batch_id, event_id",
                [b for b, _ in pairs],
                [e for _, e in pairs],
                timeout=self._timeout,
            )
            new = {(row["batch_id"], row["event_id"]) for row in inserted}
            results: list[ApplyResult] = []
            applied: list[BatchStateChange] = []
            for change in changes:
                key = (change.batch_id, change.event_id)
                if key in new:
                    new.discard(key)
                    applied.append(change)
                    results.append(ApplyResult.APPLIED)
                else:
                    results.append(ApplyResult.DUPLICATE)
            await self._insert_facts(conn, applied)
        return results

    async def _insert_facts(self, conn: AnyConnection, changes: Sequence[BatchStateChange]) -> None:
        s = self._schema
        roster_sources = sorted(
            {
                (c.batch_id, c.roster_source.value)
                for c in changes
                if c.roster is not None and c.roster_source is not None
            }
        )
        rosters = sorted(
            {
                (c.batch_id, c.roster_source.value, essay_id)
                for c in changes
                if c.roster is not None and c.roster_source is not None
                for essay_id in c.roster
            }
        )
        # One row per key in a statement (ON CONFLICT cannot touch a row twice): merge first.
        essays: dict[tuple[str, str, str], bool] = {}
        for c in changes:
            for o in c.essay_outcomes:
                key = (c.batch_id, o.step, o.essay_id)
                essays[key] = essays.get(key, False) or o.outcome is EssayOutcome.SUCCEEDED
        outcomes: dict[tuple[str, str], BatchOutcome] = {}
        for c in changes:
            if c.batch_outcome_step is not None and c.batch_outcome is not None:
                key2 = (c.batch_id, c.batch_outcome_step)
                current = outcomes.get(key2)
                if current is None or c.batch_outcome.supersedes(current):
                    outcomes[key2] = c.batch_outcome
        if roster_sources:
            await conn.execute(
                f"INSERT INTO {s}.rosters (batch_id, source) "
                "SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
                *_columns(roster_sources, 2),
                timeout=self._timeout,
            )
        if rosters:
            await conn.execute(
                f"INSERT INTO {s}.roster_essays (batch_id, source, essay_id) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) "
                "ON CONFLICT DO NOTHING",
                *_columns(rosters, 3),
                timeout=self._timeout,
            )
        if essays:
            rows = sorted((*key, ok) for key, ok in essays.items())
            # Forward only: a failure never overwrites a success, a success overwrites a failure.
            await conn.execute(
                f"INSERT INTO {s}.essay_outcomes AS t (batch_id, step, essay_id, succeeded) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[]) "
                "ON CONFLICT (batch_id, step, essay_id) DO UPDATE SET succeeded = true "
                "WHERE EXCLUDED.succeeded AND NOT t.succeeded",
                *_columns(rows, 4),
                timeout=self._timeout,
            )
        if outcomes:
            rows2 = sorted(
                (batch_id, step, o.status.value, as_utc(o.occurred_at))
                for (batch_id, step), o in outcomes.items()
            )
            # Latest wins, with the same tie-break on status as BatchOutcome.supersedes.
            await conn.execute(
                f"INSERT INTO {s}.batch_outcomes AS t (batch_id, step, status, occurred_at) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) "
                "ON CONFLICT (batch_id, step) DO UPDATE "
                "SET status = EXCLUDED.status, occurred_at = EXCLUDED.occurred_at "
                "WHERE (EXCLUDED.occurred_at, EXCLUDED.status) > (t.occurred_at, t.status)",
                *_columns(rows2, 4),
                timeout=self._timeout,
            )

    async def _guarded(self, operation: str, run: Callable[[], Awaitable[T]]) -> T:
        return await guarded_store_call(self._breaker, STORE_ERRORS, self._metrics, operation, run)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in range(width)]
