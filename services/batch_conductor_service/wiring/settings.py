"""Settings from BCS_* environment variables, validated once at start-up."""

import os
import unicodedata
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common_core.validation_errors import field_problems
from huleedu_service_libs.redaction import redact_servers, redact_url

ENV_PREFIX = "BCS_"


class Environment(StrEnum):
    TESTING = "testing"
    DEVELOPMENT = "development"
    PRODUCTION = "production"


_SECRET_BEARING = frozenset(
    {"REDIS_URL", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "INTERNAL_API_KEY"}
)


class SettingsError(ValueError):
    """A BCS_* variable has a value the service cannot run with; the message names it."""


Seconds = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    ENVIRONMENT: Environment = Environment.DEVELOPMENT
    USE_MOCK_REPOSITORY: bool = False

    HTTP_HOST: str = Field(default="0.0.0.0", min_length=1)
    HTTP_PORT: int = Field(default=4002, ge=0, le=65535)
    # The contract's outbound HTTP client timeout. BCS makes no outbound HTTP calls; the value
    # is validated so a deployment shared with other services keeps working.
    HTTP_TIMEOUT: Seconds = 30.0
    REQUEST_BODY_TIMEOUT_SECONDS: Seconds = 30.0
    MAX_REQUEST_BYTES: int = Field(default=64 * 1024, ge=256)
    SHUTDOWN_TIMEOUT_SECONDS: Seconds = 10.0
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    PIPELINES_PATH: Path = Path("pipelines.yaml")

    KAFKA_BOOTSTRAP_SERVERS: str = Field(default="localhost:9092", min_length=1)
    KAFKA_CONSUMER_ENABLED: bool = True
    KAFKA_CONSUMER_GROUP_ID: str = Field(default="batch_conductor_service", min_length=1)
    # Per fetch the consumer commits offsets, writes the record in one transaction and each
    # batch in one WATCH/MULTI/EXEC: 2,000 (was 500) spends those on four times the events
    # (backlog on Redis after the join 16,700-16,800 -> 17,400-19,600 events/s, interleaved).
    KAFKA_MAX_POLL_RECORDS: int = Field(default=2000, ge=1)
    KAFKA_RETRY_BACKOFF_MAX_SECONDS: Seconds = 30.0
    KAFKA_RETRY_BACKOFF_INITIAL_SECONDS: Seconds = 0.5
    # Kafka's own default floor for a session (group.min.session.timeout.ms): the shorter it
    # is, the sooner a group forms, as brokers wait a share of it for members to join.
    KAFKA_SESSION_TIMEOUT_SECONDS: Seconds = Field(default=6.0, ge=3.0)
    # No answer from the broker (a fetch, a metadata request) for this long, while running:
    # /healthz shows the consumer broker_unreachable (aiokafka's fetcher fails no call then).
    KAFKA_SILENCE_SECONDS: Seconds = 15.0
    KAFKA_DLQ_SEND_TIMEOUT_SECONDS: Seconds = 10.0
    RESOLUTION_DLQ_TIMEOUT_SECONDS: Seconds = 2.0
    # Failed resolutions dead-lettered per minute at most; the rest are counted and dropped.
    RESOLUTION_DLQ_PER_MINUTE: int = Field(default=60, ge=1)
    # A DLQ record's size limit: below the broker's message.max.bytes (1 MiB by default).
    DLQ_MAX_RECORD_BYTES: int = Field(default=512 * 1024, ge=4096)
    # Tries of a message whose store write fails for a reason other than an outage.
    POISON_MAX_ATTEMPTS: int = Field(default=3, ge=1, le=20)
    # Without progress this long, the consumer turns /healthz unhealthy (503).
    CONSUMER_STALL_SECONDS: Seconds = 300.0
    # An event stamped further ahead of this replica's clock is dead-lettered.
    MAX_CLOCK_SKEW_SECONDS: Seconds = 3600.0

    REDIS_URL: str = Field(default="redis://localhost:6379", min_length=1)
    REDIS_TTL_SECONDS: int = Field(default=604800, gt=0)
    REDIS_TIMEOUT_SECONDS: Seconds = 2.0
    # No braces: the batch id's `{...}` must be the only hash tag in a key.
    REDIS_KEY_PREFIX: str = Field(default="bcs", pattern=r"^[A-Za-z0-9_:.-]+$")
    REDIS_MAX_CONNECTIONS: int = Field(default=64, ge=1)
    # REDIS_URL names any one node of a Redis Cluster; the client discovers the others.
    REDIS_CLUSTER: bool = False

    DATABASE_URL: str | None = None
    DATABASE_SCHEMA: str = Field(default="bcs", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    DATABASE_POOL_MAX_SIZE: int = Field(default=10, ge=1)
    DATABASE_TIMEOUT_SECONDS: Seconds = 5.0
    # With PostgreSQL: each read also counts the batch's recorded event ids (at the same time as
    # the Redis read) and rebuilds the batch in Redis when Redis holds fewer (a failover).
    VERIFY_READS_WITH_RECORD: bool = True

    # The in-memory store's cap: beyond it the batches closest to expiry are dropped first.
    MEMORY_MAX_BATCHES: int = Field(default=100_000, ge=1)
    # Results that name no batch wait for a roster this long (docs/design.md, "Placement"): a
    # day covers a roster on a lagging partition and a consumer outage of hours, and keeps the
    # results of batches BCS never hears of from piling up for the 7 days batch state lives.
    PARKED_RESULT_TTL_SECONDS: int = Field(default=86_400, gt=0)
    # At most this many wait at once; beyond it such a result is dead-lettered (replayable).
    MAX_PARKED_RESULTS: int = Field(default=100_000, ge=1)

    CIRCUIT_FAILURE_THRESHOLD: int = Field(default=5, ge=1)
    CIRCUIT_RESET_SECONDS: Seconds = 10.0

    # BCS's own key for its /internal/ routes (header X-Internal-API-Key). Unset, no route asks
    # for one. The platform-wide HULEEDU_INTERNAL_API_KEY is not read: BOS sends BCS no key.
    INTERNAL_API_KEY: SecretStr | None = None

    # Traces go over OTLP when this is true and OTEL_EXPORTER_OTLP_ENDPOINT is set
    # (docs/tracing.md); false turns them off whatever the OTEL_* variables say.
    TRACING_ENABLED: bool = True

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("ENVIRONMENT", mode="before")
    @classmethod
    def _lower_environment(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("DATABASE_URL")
    @classmethod
    def _postgres_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// or postgres://")
        return value

    @field_validator("DATABASE_URL", "INTERNAL_API_KEY", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("INTERNAL_API_KEY")
    @classmethod
    def _key_survives_a_header(cls, value: SecretStr | None) -> SecretStr | None:
        # A client cannot send what a header strips or refuses, so such a key would refuse
        # every caller. A surrogate is a byte of the environment that is not UTF-8.
        key = None if value is None else value.get_secret_value()
        if key is not None and (
            key != key.strip() or any(unicodedata.category(c) in {"Cc", "Cs"} for c in key)
        ):
            raise ValueError(
                "must not start or end with whitespace, nor contain control characters or "
                "bytes that are not UTF-8"
            )
        return value

    @property
    def uses_memory_repository(self) -> bool:
        return self.ENVIRONMENT is Environment.TESTING or self.USE_MOCK_REPOSITORY

    @property
    def store_kind(self) -> str:
        if self.uses_memory_repository:
            return "memory"
        redis = "redis_cluster" if self.REDIS_CLUSTER else "redis"
        return redis if self.DATABASE_URL is None else f"{redis}+postgresql"

    def in_use(self) -> dict[str, object]:
        """What the service runs with, as the start-up line shows it: no password, ever."""
        summary: dict[str, object] = {
            "environment": self.ENVIRONMENT.value,
            "store": self.store_kind,
        }
        if not self.uses_memory_repository:
            summary["redis_url"] = redact_url(self.REDIS_URL)
            if self.DATABASE_URL is not None:
                summary["database_url"] = redact_url(self.DATABASE_URL)
                summary["database_schema"] = self.DATABASE_SCHEMA
        summary |= {
            "kafka_bootstrap_servers": redact_servers(self.KAFKA_BOOTSTRAP_SERVERS),
            "kafka_consumer_enabled": self.KAFKA_CONSUMER_ENABLED,
            "kafka_consumer_group": self.KAFKA_CONSUMER_GROUP_ID,
            "pipelines_path": str(self.PIPELINES_PATH.resolve()),
            "internal_api_key": "required" if self.INTERNAL_API_KEY is not None else "off",
        }
        return summary


def load_settings(**overrides: object) -> Settings:
    """Reads the environment; a bad value raises SettingsError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise settings_error(exc, _SECRET_BEARING) from None


PLATFORM_KEY_VARIABLE = "HULEEDU_INTERNAL_API_KEY"


def platform_key_is_set() -> bool:
    """Whether the platform-wide key, which BCS does not read, is set (to say so at start-up)."""
    return bool(os.environ.get(PLATFORM_KEY_VARIABLE, "").strip())


def settings_error(
    exc: ValidationError, secret_fields: frozenset[str] = frozenset()
) -> SettingsError:
    """One message naming every BCS_* variable a validation rejected."""
    problems = []
    for problem in field_problems(exc, root="?"):
        field = problem.field.partition(".")[0].upper()
        # A URL may carry a password: name the variable, never echo its value.
        shown = "" if field in secret_fields else f"={problem.input!r}"
        message = problem.message.removeprefix("Value error, ")
        problems.append(f"{ENV_PREFIX}{field}{shown}: {message}")
    return SettingsError("invalid setting " + "; ".join(problems))
