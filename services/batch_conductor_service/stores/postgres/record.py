"""The durable record of every batch state change, in PostgreSQL (asyncpg).

Redis holds the projection that answers fast and expires; this record keeps every fact for
good, is written before an event counts as handled, and answers when Redis cannot.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from batch_conductor_service.domain.batch_counts import BatchCounts
from batch_conductor_service.domain.batch_facts import BatchFacts, facts_added_by
from batch_conductor_service.domain.batch_state import ApplyResult, BatchStateChange
from batch_conductor_service.health import ComponentHealth, HealthState
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.circuit_breaker import CircuitBreaker, CircuitState
from batch_conductor_service.stores.guarded_call import guarded_store_call
from batch_conductor_service.stores.postgres.counts import read_counts
from batch_conductor_service.stores.postgres.reads import read_facts
from batch_conductor_service.stores.postgres.schema import AnyConnection, quoted_schema
from batch_conductor_service.stores.postgres.writes import insert_facts
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


@dataclass(frozen=True, slots=True)
class RecordedChanges:
    # Per change, whether its event id was new to the record.
    results: list[ApplyResult]
    # The batches of which the record held no event before this call: for these the record
    # now holds exactly what the call applied (as of its transaction's view).
    first_recorded: frozenset[str]


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

    async def record_many(self, changes: Sequence[BatchStateChange]) -> RecordedChanges:
        """Stores the changes whose event ids are new, in one transaction; returns, per change,
        whether its event id was new (a repeat within `changes` is a duplicate too), and which
        batches the record saw first in this call."""

        async def record() -> RecordedChanges:
            retrying = AsyncRetrying(
                stop=stop_after_attempt(_ROLLBACK_ATTEMPTS),
                retry=retry_if_exception_type(asyncpg.exceptions.TransactionRollbackError),
                reraise=True,
            )
            return await retrying(self._record_once, changes)

        return await self._guarded("record", record)

    async def load(self, batch_id: str, *, with_event_ids: bool = True) -> BatchFacts | None:
        """Everything recorded for the batch, or None when no event of it was ever recorded."""

        async def load() -> BatchFacts | None:
            async with (
                self._pool.acquire(timeout=self._timeout) as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                return await read_facts(conn, self._schema, batch_id, with_event_ids=with_event_ids)

        return await self._guarded("load", load)

    async def load_counts(self, batch_id: str) -> BatchCounts | None:
        """The batch's counts, aggregated in SQL; None when no event of it was ever recorded."""

        async def load() -> BatchCounts | None:
            async with (
                self._pool.acquire(timeout=self._timeout) as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                return await read_counts(conn, self._schema, batch_id)

        return await self._guarded("load", load)

    async def event_count(self, batch_id: str) -> int:
        """How many event ids are recorded for the batch: its version, which Redis's is checked
        against on read (one primary-key range count)."""

        async def count() -> int:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                value = await conn.fetchval(
                    f"SELECT count(*) FROM {self._schema}.processed_events WHERE batch_id = $1",
                    batch_id,
                    timeout=self._timeout,
                )
            return int(value or 0)

        return await self._guarded("count", count)

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

    async def _record_once(self, changes: Sequence[BatchStateChange]) -> RecordedChanges:
        s = self._schema
        times = {(c.batch_id, c.event_id): as_utc(c.occurred_at) for c in reversed(changes)}
        rows = sorted((batch_id, event_id, at) for (batch_id, event_id), at in times.items())
        async with (
            self._pool.acquire(timeout=self._timeout) as conn,
            conn.transaction(),
        ):
            inserted = await conn.fetch(
                f"INSERT INTO {s}.processed_events (batch_id, event_id, occurred_at) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) "
                "ON CONFLICT DO NOTHING RETURNING batch_id, event_id",
                [b for b, _, _ in rows],
                [e for _, e, _ in rows],
                [t for _, _, t in rows],
                timeout=self._timeout,
            )
            new = {(row["batch_id"], row["event_id"]) for row in inserted}
            results: list[ApplyResult] = []
            applied: dict[str, list[BatchStateChange]] = {}
            for change in changes:
                batch_event = (change.batch_id, change.event_id)
                if batch_event in new:
                    new.discard(batch_event)
                    applied.setdefault(change.batch_id, []).append(change)
                    results.append(ApplyResult.APPLIED)
                else:
                    results.append(ApplyResult.DUPLICATE)
            added = [facts_added_by(batch_id, group) for batch_id, group in applied.items()]
            await insert_facts(conn, s, added, self._timeout)
            first = await self._first_recorded(conn, applied)
        return RecordedChanges(results, first)

    async def _first_recorded(
        self, conn: AnyConnection, applied: dict[str, list[BatchStateChange]]
    ) -> frozenset[str]:
        """The batches whose every recorded event id was inserted by this transaction."""
        if not applied:
            return frozenset()
        totals = await conn.fetch(
            f"SELECT batch_id, count(*) AS events FROM {self._schema}.processed_events "
            "WHERE batch_id = ANY($1::text[]) GROUP BY batch_id",
            list(applied),
            timeout=self._timeout,
        )
        return frozenset(
            row["batch_id"] for row in totals if row["events"] == len(applied[row["batch_id"]])
        )

    async def _guarded(self, operation: str, run: Callable[[], Awaitable[T]]) -> T:
        return await guarded_store_call(self._breaker, STORE_ERRORS, self._metrics, operation, run)
