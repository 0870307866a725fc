"""The PostgreSQL record's tables, created or migrated at start-up, safely from many replicas."""

import re
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection of its own or one borrowed from a pool: both run queries the same way. Only the
# stubs make these generic, hence the string.
AnyConnection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

SCHEMA_NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Replicas starting together take this lock, so only one of them runs the migrations.
_MIGRATION_LOCK_KEY = 0x4243535F4D4947  # "BCS_MIG"

# Append only: a released migration is never edited; a change of schema is a new entry. Since
# migration 6 (one version row per batch, bounded outcomes) every replica must run a release
# that knows it: stop the older ones before starting a newer one.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE {schema}.processed_events (
            batch_id text NOT NULL,
            event_id text NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (batch_id, event_id)
        );
        CREATE TABLE {schema}.roster_essays (
            batch_id text NOT NULL,
            source text NOT NULL,
            essay_id text NOT NULL,
            PRIMARY KEY (batch_id, source, essay_id)
        );
        CREATE TABLE {schema}.essay_outcomes (
            batch_id text NOT NULL,
            step text NOT NULL,
            essay_id text NOT NULL,
            succeeded boolean NOT NULL,
            PRIMARY KEY (batch_id, step, essay_id)
        );
        -- "C" collation: ties on time are broken by status exactly as Python compares strings.
        CREATE TABLE {schema}.batch_outcomes (
            batch_id text NOT NULL,
            step text NOT NULL,
            status text COLLATE "C" NOT NULL,
            occurred_at timestamptz NOT NULL,
            PRIMARY KEY (batch_id, step)
        );
        """,
    ),
    (
        2,
        """
        -- One row per roster a batch has, even an empty one: a READY roster where no essay
        -- became ready has no roster_essays rows, yet replaces the REGISTERED roster.
        CREATE TABLE {schema}.rosters (
            batch_id text NOT NULL,
            source text NOT NULL,
            PRIMARY KEY (batch_id, source)
        );
        INSERT INTO {schema}.rosters (batch_id, source)
            SELECT DISTINCT batch_id, source FROM {schema}.roster_essays;
        """,
    ),
    (
        3,
        """
        -- Every outcome reported is a row of its own, only ever added: which of them counts
        -- (a success outranks a failure of the essay, the latest batch outcome wins) is the
        -- domain's decision when a batch is read, as it is for Redis. The rows of the two
        -- older tables are read as reports too; a replica older than this still writes them.
        CREATE TABLE {schema}.essay_outcome_reports (
            batch_id text NOT NULL,
            step text NOT NULL,
            essay_id text NOT NULL,
            succeeded boolean NOT NULL,
            PRIMARY KEY (batch_id, step, essay_id, succeeded)
        );
        CREATE TABLE {schema}.batch_outcome_reports (
            batch_id text NOT NULL,
            step text NOT NULL,
            status text NOT NULL,
            occurred_at timestamptz NOT NULL,
            PRIMARY KEY (batch_id, step, occurred_at, status)
        );
        """,
    ),
    (
        4,
        """
        -- The time of each event, for a batch's last event time. NULL for events recorded
        -- before this migration (or by an older replica): their times were not kept.
        ALTER TABLE {schema}.processed_events ADD COLUMN occurred_at timestamptz;
        """,
    ),
    (
        5,
        """
        -- Essay placement (stores/postgres/parking.py): which batches' rosters name an
        -- essay, and the results that named no batch, kept by essay until a roster does.
        CREATE TABLE {schema}.essay_placements (
            essay_id text NOT NULL,
            batch_id text NOT NULL,
            PRIMARY KEY (essay_id, batch_id)
        );
        CREATE TABLE {schema}.kept_results (
            essay_id text NOT NULL,
            event_id text NOT NULL,
            result text NOT NULL,
            kept_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (essay_id, event_id)
        );
        """,
    ),
    (
        6,
        """
        -- One row per batch: its version, bumped by every transaction that changes it (Redis
        -- holds the version of what it has, so a Redis behind the record is seen), its last
        -- event time, and the row writers lock to decide one batch at a time.
        CREATE TABLE {schema}.batches (
            batch_id text PRIMARY KEY,
            version bigint NOT NULL DEFAULT 0,
            last_event_at timestamptz
        );
        INSERT INTO {schema}.batches (batch_id, version, last_event_at)
            SELECT batch_id, count(*), max(occurred_at)
            FROM {schema}.processed_events GROUP BY batch_id;
        -- Per step and status, the latest time an outcome was reported: at most three rows
        -- a step, however often a report is repeated.
        CREATE TABLE {schema}.step_outcomes (
            batch_id text NOT NULL,
            step text NOT NULL,
            status text NOT NULL,
            occurred_at timestamptz NOT NULL,
            PRIMARY KEY (batch_id, step, status)
        );
        INSERT INTO {schema}.step_outcomes (batch_id, step, status, occurred_at)
            SELECT batch_id, step, status, max(occurred_at) FROM (
                SELECT batch_id, step, status, occurred_at FROM {schema}.batch_outcome_reports
                UNION ALL
                SELECT batch_id, step, status, occurred_at FROM {schema}.batch_outcomes
            ) reported GROUP BY batch_id, step, status;
        INSERT INTO {schema}.essay_outcome_reports (batch_id, step, essay_id, succeeded)
            SELECT batch_id, step, essay_id, succeeded FROM {schema}.essay_outcomes
            ON CONFLICT DO NOTHING;
        INSERT INTO {schema}.rosters (batch_id, source)
            SELECT DISTINCT batch_id, source FROM {schema}.roster_essays ON CONFLICT DO NOTHING;
        DROP TABLE {schema}.batch_outcome_reports, {schema}.batch_outcomes,
            {schema}.essay_outcomes, {schema}.kept_results;
        -- Results that named no batch, until a roster places them or they expire.
        CREATE TABLE {schema}.parked_results (
            essay_id text NOT NULL,
            event_id text NOT NULL,
            result text NOT NULL,
            expires_at timestamptz NOT NULL,
            PRIMARY KEY (essay_id, event_id)
        );
        CREATE INDEX parked_results_expiry ON {schema}.parked_results (expires_at);
        """,
    ),
)


def quoted_schema(schema: str) -> str:
    if not SCHEMA_NAME_PATTERN.fullmatch(schema):
        raise ValueError(f"invalid PostgreSQL schema name {schema!r}")
    return f'"{schema}"'


async def ensure_schema(connection: AnyConnection, schema: str) -> list[int]:
    """Applies the migrations this database has not seen yet; returns their versions."""
    name = quoted_schema(schema)
    applied_now: list[int] = []
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_KEY)
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {name}.schema_migrations ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await connection.fetch(f"SELECT version FROM {name}.schema_migrations")
        done = {row["version"] for row in rows}
        for version, sql in MIGRATIONS:
            if version not in done:
                await connection.execute(sql.format(schema=name))
                await connection.execute(
                    f"INSERT INTO {name}.schema_migrations (version) VALUES ($1)", version
                )
                applied_now.append(version)
    return applied_now
