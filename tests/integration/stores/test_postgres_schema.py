"""Migrations against the real PostgreSQL: a database left at an older version is brought up to
date without losing what it recorded."""

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from batch_conductor_service.domain.batch_state import RosterSource, StepOutcome
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.stores.postgres.schema import MIGRATIONS, ensure_schema
from common_core.enums import BatchPhaseStatus
from tests.integration.stores.builders import T0, essays, outcome
from tests.integration.stores.conftest import make_record


@pytest.fixture
async def version_1_schema(pg_pool: asyncpg.Pool) -> AsyncIterator[str]:
    schema = f"bcs_v1_{uuid.uuid4().hex[:12]}"
    version, sql = MIGRATIONS[0]
    assert version == 1
    async with pg_pool.acquire() as connection:
        await connection.execute(f'CREATE SCHEMA "{schema}"')
        await connection.execute(
            f'CREATE TABLE "{schema}".schema_migrations ('
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await connection.execute(sql.format(schema=f'"{schema}"'))
        await connection.execute(f'INSERT INTO "{schema}".schema_migrations VALUES (1)')
    yield schema
    async with pg_pool.acquire() as connection:
        await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def test_migrations_are_applied_once(pg_pool: asyncpg.Pool, version_1_schema: str) -> None:
    async with pg_pool.acquire() as connection:
        assert await ensure_schema(connection, version_1_schema) == [v for v, _ in MIGRATIONS[1:]]
        assert await ensure_schema(connection, version_1_schema) == []


async def test_rosters_recorded_before_migration_2_are_still_read(
    pg_pool: asyncpg.Pool, version_1_schema: str, metrics: BcsMetrics
) -> None:
    s = f'"{version_1_schema}"'
    async with pg_pool.acquire() as connection:
        await connection.execute(
            f"INSERT INTO {s}.processed_events (batch_id, event_id) VALUES ('b1', 'x')"
        )
        await connection.execute(
            f"INSERT INTO {s}.roster_essays (batch_id, source, essay_id) "
            "VALUES ('b1', 'registered', 'e1'), ('b1', 'registered', 'e2')"
        )
        await ensure_schema(connection, version_1_schema)
        presence = await connection.fetch(f"SELECT batch_id, source FROM {s}.rosters")
    assert [tuple(row) for row in presence] == [("b1", "registered")]
    stored = await make_record(pg_pool, version_1_schema, metrics).load("b1")
    assert stored is not None
    facts, version = stored
    assert facts.rosters == {RosterSource.REGISTERED: {"e1", "e2"}}
    assert version == 1  # one event recorded: migration 6 counts them into the version


async def test_outcomes_recorded_before_migration_6_are_kept_and_later_ones_outrank_them(
    pg_pool: asyncpg.Pool, version_1_schema: str, metrics: BcsMetrics
) -> None:
    # Rows of the version-1 tables are moved into the bounded tables: a later success and a
    # later batch outcome recorded now outrank them, and an essay's failure stays.
    s = f'"{version_1_schema}"'
    async with pg_pool.acquire() as connection:
        await connection.execute(
            f"INSERT INTO {s}.processed_events (batch_id, event_id) VALUES ('b1', 'old')"
        )
        await connection.execute(
            f"INSERT INTO {s}.essay_outcomes (batch_id, step, essay_id, succeeded) "
            "VALUES ('b1', 'nlp', 'e1', false), ('b1', 'nlp', 'e2', false)"
        )
        await connection.execute(
            f"INSERT INTO {s}.batch_outcomes (batch_id, step, status, occurred_at) "
            "VALUES ('b1', 'nlp', 'FAILED_CRITICALLY', $1)",
            T0,
        )
        await ensure_schema(connection, version_1_schema)
    record = make_record(pg_pool, version_1_schema, metrics)
    loaded = await record.load("b1")
    assert loaded is not None
    assert loaded[0].latest_outcomes() == {
        "nlp": StepOutcome(BatchPhaseStatus.FAILED_CRITICALLY, T0)
    }
    later = outcome("b1", "nlp", BatchPhaseStatus.COMPLETED_SUCCESSFULLY, minutes=5)
    await record.record([essays("b1", "nlp", True, "e1"), later])
    stored = await record.load("b1")
    assert stored is not None
    facts, version = stored
    assert facts.failed == {"nlp": {"e1", "e2"}}
    assert facts.succeeded == {"nlp": {"e1"}}
    assert later.outcome is not None
    assert facts.latest_outcomes() == {"nlp": later.outcome}
    assert version == 2
