"""Essay placement in PostgreSQL, for the Redis + PostgreSQL store: the durable record holds
the placement too, so a Redis that lost its data loses no placement.

Each call is one statement in autocommit: a committed write is seen by every statement that
starts after it, which is all the placement step's write-then-read handshake needs. Rows live
as long as the record keeps batch state (for good).
"""

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import TypeVar

import asyncpg

from batch_conductor_service.domain.placement import UnplacedResult
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.circuit_breaker import CircuitBreaker
from batch_conductor_service.stores.guarded_call import guarded_store_call
from batch_conductor_service.stores.placement.codec import decode_result, encode_result
from batch_conductor_service.stores.postgres.record import STORE_ERRORS
from batch_conductor_service.stores.postgres.schema import quoted_schema

T = TypeVar("T")


class PostgresEssayPlacement:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        schema: str,
        metrics: BcsMetrics,
        breaker: CircuitBreaker,
        timeout_seconds: float,
    ) -> None:
        self._pool = pool
        self._schema = quoted_schema(schema)
        self._metrics = metrics
        self._breaker = breaker
        self._timeout = timeout_seconds

    async def index_rosters(self, rosters: Mapping[str, Collection[str]]) -> None:
        pairs = sorted({(e, b) for b, essays in rosters.items() for e in essays})
        if pairs:
            await self._execute(
                "placement_index",
                f"INSERT INTO {self._schema}.essay_placements (essay_id, batch_id) "
                "SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
                [e for e, _ in pairs],
                [b for _, b in pairs],
            )

    async def batches_of(self, essay_ids: Collection[str]) -> dict[str, frozenset[str]]:
        rows = await self._fetch(
            "placement_lookup",
            f"SELECT essay_id, batch_id FROM {self._schema}.essay_placements "
            "WHERE essay_id = ANY($1::text[])",
            sorted(set(essay_ids)),
        )
        found: dict[str, set[str]] = {}
        for essay_id, batch_id in rows:
            found.setdefault(essay_id, set()).add(batch_id)
        return {essay_id: frozenset(ids) for essay_id, ids in found.items()}

    async def keep(self, results: Sequence[UnplacedResult]) -> None:
        unique = {(r.essay_id, r.event_id): encode_result(r) for r in results}
        if unique:
            keys = sorted(unique)
            await self._execute(
                "placement_keep",
                f"INSERT INTO {self._schema}.kept_results (essay_id, event_id, result) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
                [e for e, _ in keys],
                [v for _, v in keys],
                [unique[key] for key in keys],
            )

    async def kept_for(self, essay_ids: Collection[str]) -> dict[str, list[UnplacedResult]]:
        rows = await self._fetch(
            "placement_kept",
            f"SELECT essay_id, result FROM {self._schema}.kept_results "
            "WHERE essay_id = ANY($1::text[])",
            sorted(set(essay_ids)),
        )
        found: dict[str, list[UnplacedResult]] = {}
        for essay_id, text in rows:
            result = decode_result(text)
            if result is not None:
                found.setdefault(essay_id, []).append(result)
        return found

    async def _execute(self, operation: str, sql: str, *args: object) -> None:
        async def run() -> None:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                await conn.execute(sql, *args, timeout=self._timeout)

        await self._guarded(operation, run)

    async def _fetch(self, operation: str, sql: str, *args: object) -> list[tuple[str, str]]:
        if args and not args[0]:
            return []

        async def run() -> list[tuple[str, str]]:
            async with self._pool.acquire(timeout=self._timeout) as conn:
                rows = await conn.fetch(sql, *args, timeout=self._timeout)
                return [(row[0], row[1]) for row in rows]

        return await self._guarded(operation, run)

    async def _guarded(self, operation: str, run: Callable[[], Awaitable[T]]) -> T:
        return await guarded_store_call(self._breaker, STORE_ERRORS, self._metrics, operation, run)
