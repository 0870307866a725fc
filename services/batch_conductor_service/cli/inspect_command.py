"""`bcs inspect BATCH_ID`: asks the running service (GET /internal/v1/batches/<id>) and prints
its answer for a terminal. Over HTTP, so the answer is the service's own: the same store, the
same pipelines.yaml and the same completion rule as its /define."""

import argparse
import json
import sys
import urllib.error
import urllib.parse
from datetime import datetime
from typing import Any

from batch_conductor_service.cli.targets import (
    TargetUnknownError,
    call_service,
    service_url,
)
from batch_conductor_service.wiring.settings import SettingsError


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "inspect",
        help="show what the running service knows of a batch",
        description="Asks the running service, at --url, else BCS_DEMO_URL, else the running "
        "bcs-dev's, else http://127.0.0.1:$BCS_HTTP_PORT (4002); with the internal API key "
        "of BCS_INTERNAL_API_KEY when set.",
    )
    parser.add_argument("batch_id", metavar="BATCH_ID")
    parser.add_argument("--url", help="the service's base URL")
    parser.add_argument("--json", action="store_true", help="the service's JSON answer as is")
    parser.set_defaults(run=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    try:
        base_url = service_url(args.url)
        url = f"{base_url}/internal/v1/batches/{urllib.parse.quote(args.batch_id, safe='')}"
        status, body = call_service(url)
    except (SettingsError, TargetUnknownError) as exc:
        print(f"bcs: {exc}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"bcs: cannot ask the service at {base_url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"bcs: {status} {body.get('error')}: {body.get('detail')}", file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2) if args.json else format_batch(body))
    return 0


def format_batch(body: dict[str, Any]) -> str:
    roster = body["roster"]
    lines = [
        f"batch {body['batch_id']}",
        "  roster:      "
        + ("unknown (no roster event yet)" if roster is None else _roster(roster)),
        f"  last event:  {_when(body['last_event_at'])}",
        "",
        f"  {'STEP':<16} {'SUCCEEDED':>9} {'FAILED':>6}  {'BATCH OUTCOME':<44} COMPLETE  WHY",
    ]
    for step in body["steps"]:
        outcome = step["latest_batch_outcome"]
        shown = "-" if outcome is None else f"{outcome['status']} {_when(outcome['occurred_at'])}"
        lines.append(
            f"  {step['step']:<16} {step['essays_succeeded']:>9} {step['essays_failed']:>6}  "
            f"{shown:<44} {'yes' if step['complete'] else 'no':<8}  {step['reason']}"
        )
    return "\n".join(lines)


def _roster(roster: dict[str, Any]) -> str:
    return f"{roster['size']} essays (from the {roster['source']} event)"


def _when(value: str | None) -> str:
    if value is None:
        return "not recorded"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S UTC")
