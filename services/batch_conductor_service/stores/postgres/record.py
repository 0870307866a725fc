"""The durable record of every batch's facts, in PostgreSQL (asyncpg).

Redis holds the facts that answer fast and expire; the record keeps them for good, is written
before an event counts as handled, answers when Redis cannot and rebuilds what Redis lost. It
decides by domain.batch_state.merge, one batch at a time: a transaction locks its batches' rows
(in id order, so concurrent writers never deadlock) before it reads what the rule needs.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from batch_conductor_service.domain.batch_state import (
    ApplyResult,
    BatchChange,
    BatchFacts,
    RecordedBatch,
    RosterSource,
    latest_outcomes,
    merge,
)
from batch_conductor_service.health import ComponentHealth, HealthState
from batch_conductor_service.stores.guard import CircuitState, Failure, StoreGuard
from batch_conductor_service.stores.postgres.schema import AnyConnection, quoted_schema
from common_core.enums import BatchPhaseStatus
from common_core.timestamps import as_utc

STORE = "postgresql"
_OUTAGES = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.InterfaceError,
)
# A deadlock or serialization failure the server reports: the transaction is simply run again.
_ROLLBACK_ATTEMPTS = 3


def classify(exc: BaseException) -> Failure | None:
    if isinstance(exc, TimeoutError):
        return Failure.TIMEOUT
    return Failure.OUTAGE if isinstance(exc, _OUTAGES) else None


@dataclass(frozen=True, slots=True)
class Recorded:
    results: list[ApplyResult]
    # Per batch of the call: its versions before and after, and what the call added to it.
    batches: dict[str, RecordedBatch]


class PostgresBatchRecord:
    health_name = STORE

    def __init__(
        self,
        pool: asyncpg.Pool,
        guard: StoreGuard,
        *,
        schema: str,
        timeout_seconds: float = 5.0,
        health_timeout_seconds: float = 1.0,
    ) -> None:
        self._pool = pool
        self.guard = guard
        self._s = quoted_schema(schema)
        self._timeout = timeout_seconds
        self._health_timeout = health_timeout_seconds

    async def record(self, changes: Sequence[BatchChange]) -> Recorded:
        """Stores what the changes add, in one transaction."""

        async def record() -> Recorded:
            retrying = AsyncRetrying(
                stop=stop_after_attempt(_ROLLBACK_ATTEMPTS),
                retry=retry_if_exception_type(asyncpg.exceptions.TransactionRollbackError),
                reraise=True,
            )
            return await retrying(self._record_once, changes)

        return await self.guard.run("record", record)

    async def load(self, batch_id: str) -> tuple[BatchFacts, int] | None:
        """The batch's facts (not its event ids) and version; None when never recorded."""

        async def load() -> tuple[BatchFacts, int] | None:
            async with (
                self._pool.acquire(timeout=self._timeout) as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                return await self._read_facts(conn, batch_id)

        return await self.guard.run("load", load)

    async def version(self, batch_id: str) -> int:
        """The batch's version, which Redis's is checked against on read (0: never recorded)."""

        async def version() -> int:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                value = await conn.fetchval(
                    f"SELECT version FROM {self._s}.batches WHERE batch_id = $1",
                    batch_id,
                    timeout=self._timeout,
                )
            return int(value or 0)

        return await self.guard.run("version", version)

    async def health(self) -> dict[str, ComponentHealth]:
        detail: dict[str, Any] = {"circuit": self.guard.state.value}
        try:
            async with self._pool.acquire(timeout=self._health_timeout) as conn:
                await conn.fetchval("SELECT 1", timeout=self._health_timeout)
        except Exception as exc:
            if classify(exc) is None:
                raise
            detail["error"] = f"{type(exc).__name__}: {exc}"
            return {STORE: ComponentHealth(HealthState.UNHEALTHY, detail)}
        state = HealthState.OK if self.guard.state is CircuitState.CLOSED else HealthState.DEGRADED
        return {STORE: ComponentHealth(state, detail)}

    async def _record_once(self, changes: Sequence[BatchChange]) -> Recorded:
        s, timeout = self._s, self._timeout
        batch_ids = sorted({c.batch_id for c in changes})
        async with self._pool.acquire(timeout=timeout) as conn, conn.transaction():
            # Creates the rows it lacks and locks them all, in id order: the batch's writers
            # take their turns from here to the commit.
            locked = await conn.fetch(
                f"INSERT INTO {s}.batches (batch_id) SELECT unnest($1::text[]) ORDER BY 1 "
                "ON CONFLICT (batch_id) DO UPDATE SET batch_id = EXCLUDED.batch_id "
                "RETURNING batch_id, version",
                batch_ids,
                timeout=timeout,
            )
            versions = {row["batch_id"]: row["version"] for row in locked}
            events = sorted({(c.batch_id, c.event_id) for c in changes if c.event_id is not None})
            known = (
                await conn.fetch(
                    f"SELECT batch_id, event_id FROM {s}.processed_events "
                    "WHERE (batch_id, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
                    [b for b, _ in events],
                    [e for _, e in events],
                    timeout=timeout,
                )
                if events
                else []
            )
            known_ids: dict[str, set[str]] = {}
            for row in known:
                known_ids.setdefault(row["batch_id"], set()).add(row["event_id"])
            with_outcomes = sorted({c.batch_id for c in changes if c.outcome is not None})
            reported = (
                await conn.fetch(
                    f"SELECT batch_id, step, status, occurred_at FROM {s}.step_outcomes "
                    "WHERE batch_id = ANY($1::text[])",
                    with_outcomes,
                    timeout=timeout,
                )
                if with_outcomes
                else []
            )
            latest: dict[str, dict[tuple[str, BatchPhaseStatus], datetime]] = {}
            for row in reported:
                key = (row["step"], BatchPhaseStatus(row["status"]))
                latest.setdefault(row["batch_id"], {})[key] = row["occurred_at"]
            merged = merge(
                changes,
                known_ids,
                {b: latest_outcomes(outcomes.items()) for b, outcomes in latest.items()},
            )
            await self._insert(conn, merged.added)
            bumped = (
                await conn.fetch(
                    f"UPDATE {s}.batches b SET version = b.version + 1, "
                    "last_event_at = GREATEST(b.last_event_at, u.at) "
                    "FROM unnest($1::text[], $2::timestamptz[]) AS u(batch_id, at) "
                    "WHERE b.batch_id = u.batch_id RETURNING b.batch_id, b.version",
                    list(merged.added),
                    [_utc(f.last_event_at) for f in merged.added.values()],
                    timeout=timeout,
                )
                if merged.added
                else []
            )
        # Every batch of the call, changed or not: Redis catches up on one it missed (a write
        # of it that failed before this call was retried and found nothing new to record).
        recorded = {b: RecordedBatch(v, v, BatchFacts(b)) for b, v in versions.items()}
        for row in bumped:
            batch_id = row["batch_id"]
            recorded[batch_id] = RecordedBatch(
                versions[batch_id], row["version"], merged.added[batch_id]
            )
        return Recorded(merged.results, recorded)

    async def _insert(self, conn: AnyConnection, added: dict[str, BatchFacts]) -> None:
        """Rows go in sorted order, so concurrent writers take row locks in one order."""
        facts = list(added.values())
        events = sorted((f.batch_id, event_id) for f in facts for event_id in f.event_ids)
        rosters = sorted({(f.batch_id, source.value) for f in facts for source in f.rosters})
        members = sorted(
            {
                (f.batch_id, source.value, essay)
                for f in facts
                for source, essays in f.rosters.items()
                for essay in essays
            }
        )
        essays = sorted(
            {
                (f.batch_id, step, essay, succeeded)
                for f in facts
                for succeeded, by_step in ((True, f.succeeded), (False, f.failed))
                for step, ids in by_step.items()
                for essay in ids
            }
        )
        outcomes = sorted(
            (f.batch_id, step, status.value, _utc(at))
            for f in facts
            for (step, status), at in f.outcomes.items()
        )
        inserts = (
            ("processed_events (batch_id, event_id)", "text text", events, ""),
            ("rosters (batch_id, source)", "text text", rosters, ""),
            ("roster_essays (batch_id, source, essay_id)", "text text text", members, ""),
            (
                "essay_outcome_reports (batch_id, step, essay_id, succeeded)",
                "text text text boolean",
                essays,
                "",
            ),
            (
                "step_outcomes (batch_id, step, status, occurred_at)",
                "text text text timestamptz",
                outcomes,
                " (batch_id, step, status) DO UPDATE SET occurred_at = "
                "GREATEST(step_outcomes.occurred_at, EXCLUDED.occurred_at)",
            ),
        )
        for table, types, rows, on_conflict in inserts:
            if not rows:
                continue
            arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types.split(), start=1))
            await conn.execute(
                f"INSERT INTO {self._s}.{table} SELECT * FROM unnest({arrays}) "
                f"ON CONFLICT{on_conflict or ' DO NOTHING'}",
                *(list(column) for column in zip(*rows, strict=True)),
                timeout=self._timeout,
            )

    async def _read_facts(
        self, conn: AnyConnection, batch_id: str
    ) -> tuple[BatchFacts, int] | None:
        s = self._s
        batch = await conn.fetchrow(
            f"SELECT version, last_event_at FROM {s}.batches WHERE batch_id = $1", batch_id
        )
        if batch is None or not batch["version"]:
            return None
        facts = BatchFacts(batch_id, last_event_at=batch["last_event_at"])
        rosters = await conn.fetch(
            f"SELECT source, NULL AS essay_id FROM {s}.rosters WHERE batch_id = $1 "
            f"UNION ALL SELECT source, essay_id FROM {s}.roster_essays WHERE batch_id = $1",
            batch_id,
        )
        for row in rosters:
            essays = facts.rosters.setdefault(RosterSource(row["source"]), set())
            if row["essay_id"] is not None:
                essays.add(row["essay_id"])
        for row in await conn.fetch(
            f"SELECT step, essay_id, succeeded FROM {s}.essay_outcome_reports WHERE batch_id = $1",
            batch_id,
        ):
            target = facts.succeeded if row["succeeded"] else facts.failed
            target.setdefault(row["step"], set()).add(row["essay_id"])
        for row in await conn.fetch(
            f"SELECT step, status, occurred_at FROM {s}.step_outcomes WHERE batch_id = $1",
            batch_id,
        ):
            facts.outcomes[(row["step"], BatchPhaseStatus(row["status"]))] = row["occurred_at"]
        return facts, int(batch["version"])


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


async def close_pool(pool: asyncpg.Pool, timeout_seconds: float) -> None:
    """Closes the pool, waiting at most `timeout_seconds` for connections still in use (close()
    alone waits without limit); then cuts them off."""
    try:
        await asyncio.wait_for(pool.close(), timeout_seconds)
    except TimeoutError:
        pool.terminate()


async def open_pool(url: str, *, max_size: int, timeout_seconds: float) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        url, min_size=1, max_size=max_size, timeout=timeout_seconds, command_timeout=timeout_seconds
    )
