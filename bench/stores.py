"""The production state stores for the benches that measure them in-process, built by the
service's own wiring (wiring/store_providers.py) from its settings, under a key prefix and a
schema of the bench's own, removed afterwards."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
from dishka import AsyncContainer, Provider, Scope, from_context, make_async_container
from prometheus_client import CollectorRegistry
from service_process import DATABASE_URL, REDIS_URL, remove_state, run_id

from batch_conductor_service.domain.batch_state import (
    BatchChange,
    EssayResult,
    RosterSource,
)
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import BatchStateRepositoryProtocol
from batch_conductor_service.wiring.settings import Settings, load_settings
from batch_conductor_service.wiring.store_providers import store_providers


class _Given(Provider):
    scope = Scope.APP

    settings = from_context(provides=Settings)
    metrics = from_context(provides=BcsMetrics)


@asynccontextmanager
async def production_stores(
    *, with_postgres: bool, **settings: object
) -> AsyncIterator[tuple[AsyncContainer, BcsMetrics]]:
    """The container holding the stores (Redis, and the PostgreSQL record with_postgres)."""
    run = run_id()
    chosen = load_settings(
        ENVIRONMENT="production",
        KAFKA_CONSUMER_ENABLED=False,
        REDIS_URL=REDIS_URL,
        REDIS_KEY_PREFIX=run,
        DATABASE_URL=DATABASE_URL if with_postgres else None,
        DATABASE_SCHEMA=run,
        **settings,
    )
    metrics = BcsMetrics(CollectorRegistry())
    container = make_async_container(
        _Given(), *store_providers(chosen), context={Settings: chosen, BcsMetrics: metrics}
    )
    try:
        yield container, metrics
    finally:
        await container.close()
        await remove_state(run, with_postgres=with_postgres)


async def postgres_reachable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        connection = await asyncpg.connect(DATABASE_URL, timeout=2)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"{DATABASE_URL} not reachable ({exc})"
    await connection.close()
    return None


async def seed_batch(
    repository: BatchStateRepositoryProtocol,
    batch_id: str,
    essays: int,
    steps: tuple[str, ...] = ("spellcheck",),
) -> None:
    """A batch with a ready roster of `essays` essays, each with a success per step, written as
    the consumer writes a fetch: the roster event, then one event per essay result."""
    now = datetime.now(UTC)
    ids = [f"essay-{i}" for i in range(essays)]
    roster = BatchChange(
        batch_id,
        now,
        f"{batch_id}-roster",
        roster=frozenset(ids),
        roster_source=RosterSource.READY,
    )
    results = [
        BatchChange(
            batch_id, now, f"{batch_id}-{step}-{essay}", essays=(EssayResult(essay, step, True),)
        )
        for step in steps
        for essay in ids
    ]
    await repository.apply([roster])
    for start in range(0, len(results), 2000):
        await repository.apply(results[start : start + 2000])
