"""Essay placement in PostgreSQL, for the Redis + PostgreSQL store: the durable record holds the
placement too, so a Redis that lost its data loses no placement. Each call is one statement or
two in autocommit: a committed write is seen by every statement that starts after it, which is
all the consumer's write-then-read order needs (protocols.py)."""

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from batch_conductor_service.domain.batch_state import ParkedResult
from batch_conductor_service.errors import StateStoreUnavailableError
from batch_conductor_service.health import ComponentHealth
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.guard import StoreGuard
from batch_conductor_service.stores.parking import (
    decode_parked,
    encode_parked,
    parking_health,
    parking_unknown,
)
from batch_conductor_service.stores.postgres.schema import quoted_schema


class PostgresEssayPlacement:
    health_name = "parking"

    def __init__(
        self,
        pool: asyncpg.Pool,
        guard: StoreGuard,
        metrics: BcsMetrics,
        *,
        schema: str,
        parked_ttl_seconds: int,
        max_parked: int,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._pool = pool
        self._guard = guard
        self._metrics = metrics
        self._s = quoted_schema(schema)
        self._parked_ttl = timedelta(seconds=parked_ttl_seconds)
        self._max_parked = max_parked
        self._timeout = timeout_seconds

    async def index_rosters(self, rosters: Mapping[str, Collection[str]]) -> None:
        pairs = sorted({(e, b) for b, essays in rosters.items() for e in essays})
        if pairs:
            await self._run(
                "placement_index",
                "execute",
                f"INSERT INTO {self._s}.essay_placements (essay_id, batch_id) "
                "SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
                [e for e, _ in pairs],
                [b for _, b in pairs],
            )

    async def batches_of(self, essay_ids: Collection[str]) -> dict[str, frozenset[str]]:
        if not essay_ids:
            return {}
        rows = await self._run(
            "placement_lookup",
            "fetch",
            f"SELECT essay_id, batch_id FROM {self._s}.essay_placements "
            "WHERE essay_id = ANY($1::text[])",
            sorted(set(essay_ids)),
        )
        found: dict[str, set[str]] = {}
        for row in rows:
            found.setdefault(row["essay_id"], set()).add(row["batch_id"])
        return {essay_id: frozenset(ids) for essay_id, ids in found.items()}

    async def park(self, results: Sequence[ParkedResult]) -> list[ParkedResult]:
        if not results:
            return []
        expired = await self._run(
            "placement_park",
            "fetch",
            f"DELETE FROM {self._s}.parked_results WHERE expires_at <= now() RETURNING 1",
        )
        if expired:
            self._metrics.unplaced_results.labels("expired").inc(len(expired))
        room = max(0, self._max_parked - await self._parked())
        taken = {(r.essay_id, r.event_id): r for r in results[:room]}
        keys = sorted(taken)
        expires_at = datetime.now(UTC) + self._parked_ttl
        if keys:
            await self._run(
                "placement_park",
                "execute",
                f"INSERT INTO {self._s}.parked_results (essay_id, event_id, result, expires_at) "
                "SELECT e, i, r, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(e, i, r) "
                "ON CONFLICT DO NOTHING",
                [e for e, _ in keys],
                [i for _, i in keys],
                [encode_parked(taken[key]) for key in keys],
                expires_at,
            )
        return list(results[room:])

    async def parked_for(self, essay_ids: Collection[str]) -> dict[str, list[ParkedResult]]:
        if not essay_ids:
            return {}
        rows = await self._run(
            "placement_parked",
            "fetch",
            f"SELECT essay_id, result FROM {self._s}.parked_results "
            "WHERE essay_id = ANY($1::text[]) AND expires_at > now()",
            sorted(set(essay_ids)),
        )
        found: dict[str, list[ParkedResult]] = {}
        for row in rows:
            result = decode_parked(row["result"])
            if result is not None:
                found.setdefault(row["essay_id"], []).append(result)
        return found

    async def unpark(self, results: Sequence[ParkedResult]) -> None:
        keys = sorted({(r.essay_id, r.event_id) for r in results})
        if keys:
            await self._run(
                "placement_unpark",
                "execute",
                f"DELETE FROM {self._s}.parked_results "
                "WHERE (essay_id, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
                [e for e, _ in keys],
                [i for _, i in keys],
            )

    async def health(self) -> dict[str, ComponentHealth]:
        try:
            count = await self._parked()
        except StateStoreUnavailableError as exc:
            return {self.health_name: parking_unknown(exc)}
        return {self.health_name: parking_health(count, self._max_parked)}

    async def _parked(self) -> int:
        rows = await self._run(
            "placement_count",
            "fetch",
            f"SELECT count(*) AS parked FROM {self._s}.parked_results WHERE expires_at > now()",
        )
        return int(rows[0]["parked"])

    async def _run(self, operation: str, method: str, sql: str, *args: object) -> Any:
        async def run() -> Any:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                return await getattr(conn, method)(sql, *args, timeout=self._timeout)

        return await self._guard.run(operation, run)
