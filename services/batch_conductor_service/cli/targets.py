"""Where the operator's commands find Kafka and the service: an explicit option, else the
BCS_* setting, else the broker and service a running `bcs-dev` started, else the defaults.

A dev state file that is there but not believable (dev/state.py) is never passed over for the
defaults: the command stops and says what to name instead."""

import json
import os
import urllib.error
import urllib.request
from typing import Any

from batch_conductor_service.dev.settings import load_dev_settings
from batch_conductor_service.dev.state import DevRunState, UntrustedDevStateError
from batch_conductor_service.wiring.settings import Settings


class TargetUnknownError(Exception):
    """Only an untrusted dev state file names the target; the message says what to pass."""


def _dev_run(instead: str) -> DevRunState | None:
    try:
        return DevRunState.read(load_dev_settings().DEV_STATE_FILE)
    except UntrustedDevStateError as exc:
        raise TargetUnknownError(f"{exc}; {instead}") from None


def kafka_bootstrap_servers(
    option: str | None = None,
    *,
    instead: str = "pass --bootstrap-servers (or set BCS_KAFKA_BOOTSTRAP_SERVERS)",
) -> str:
    if option:
        return option
    if os.environ.get("BCS_KAFKA_BOOTSTRAP_SERVERS"):
        return os.environ["BCS_KAFKA_BOOTSTRAP_SERVERS"]
    dev_run = _dev_run(instead)
    if dev_run is not None:
        return dev_run.bootstrap_servers
    return str(Settings.model_fields["KAFKA_BOOTSTRAP_SERVERS"].default)


def consumer_group_id() -> str:
    """The group the service consumes with, by the setting it reads."""
    default = str(Settings.model_fields["KAFKA_CONSUMER_GROUP_ID"].default)
    return os.environ.get("BCS_KAFKA_CONSUMER_GROUP_ID") or default


def service_url(
    option: str | None = None, *, instead: str = "pass --url (or set BCS_DEMO_URL)"
) -> str:
    if option:
        return option.rstrip("/")
    explicit = load_dev_settings().DEMO_URL
    if explicit:
        return explicit.rstrip("/")
    if not os.environ.get("BCS_HTTP_PORT"):
        dev_run = _dev_run(instead)
        if dev_run is not None:
            return dev_run.service_url
    return f"http://127.0.0.1:{os.environ.get('BCS_HTTP_PORT', '4002')}"


def internal_api_headers() -> dict[str, str]:
    """What the service asks of a caller of its /internal/ routes when its key is set: the key
    from the variable the service reads, and who calls."""
    key = os.environ.get("BCS_INTERNAL_API_KEY", "")
    headers = {"X-Service-ID": "bcs-cli"}
    if key.strip():  # blank is unset, as the service reads it
        # http.client sends a header as Latin-1; so written, its bytes are the key's UTF-8,
        # which is what the service compares.
        headers["X-Internal-API-Key"] = key.encode("utf-8").decode("latin-1")
    return headers


def call_service(url: str, body: object = None, timeout_seconds: float = 10) -> tuple[int, Any]:
    """The service's status and JSON answer, an error's included; a POST when `body` is given."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **internal_api_headers()}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
