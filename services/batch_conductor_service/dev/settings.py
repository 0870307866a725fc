"""The dev tools' own BCS_* variables, validated like the service's: a bad value is one line
naming the variable."""

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from batch_conductor_service.wiring.settings import ENV_PREFIX, settings_error

DEFAULT_DEV_BROKER_PORT = 19092


class DevSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, case_sensitive=False, extra="ignore", frozen=True
    )

    # 0 lets the system choose; a taken port makes bcs-dev choose another.
    DEV_BROKER_PORT: int = Field(default=DEFAULT_DEV_BROKER_PORT, ge=0, le=65535)
    # Where bcs-dev writes the broker and service it started, for bcs-demo and `bcs dlq`.
    DEV_STATE_FILE: Path = Path(".bcs-dev.json")
    DEMO_URL: str | None = Field(default=None, pattern=r"^https?://")


def load_dev_settings() -> DevSettings:
    """Raises SettingsError naming the variable."""
    try:
        return DevSettings()
    except ValidationError as exc:
        raise settings_error(exc) from None
