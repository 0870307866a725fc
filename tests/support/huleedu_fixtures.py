"""The HuleEdu platform's recorded messages (tests/fixtures/huleedu/), with fresh ids and times.

Templating replaces every id-like string (UUIDs, `batch-...`/`essay-...`/`s-...` names, 32-hex
storage ids) consistently, one fresh value per distinct original, and moves every timestamp by
one random offset, so tests never depend on the examples' values and two loads never collide in
a shared store. The wire form is kept: `json.dumps` with its default separators, as the
platform's KafkaBus writes it.
"""

import json
import random
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# A copy kept with the tests, so that a clone of the repository runs them on its own.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "huleedu"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_NAMED_ID = re.compile(r"^(batch|essay|s-essay)-[0-9A-Za-z-]+$")
_STORAGE_ID = re.compile(r"^[0-9a-f]{32}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")


@dataclass(frozen=True)
class Fixture:
    name: str  # e.g. "current/huleedu.cj_assessment.completed.v1.json"
    topic: str
    document: dict[str, Any]
    id_map: dict[str, str]

    def wire(self) -> bytes:
        return json.dumps(self.document).encode("utf-8")

    def at(self, path: str) -> Any:
        node: Any = self.document
        for key in path.split("."):
            node = node[key]
        return node


def fixture_names() -> list[str]:
    names = sorted(
        str(path.relative_to(FIXTURES))
        for path in FIXTURES.glob("*/*.json")
        if not path.name.endswith(".meta.json")
    )
    # Tests parametrized by an empty list would be skipped, never failed.
    if not names:
        raise FileNotFoundError(f"no recorded messages under {FIXTURES}")
    return names


def original(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return document


def load(name: str, ids: dict[str, str] | None = None) -> Fixture:
    """One fixture, freshly templated; `ids` pins chosen originals to chosen values (to put
    several fixtures in one scenario), every other id is fresh. The topic comes from the
    `.meta.json` beside it, else the envelope's `event_type` (the current roster fixtures have
    no meta file)."""
    path = FIXTURES / name
    original = json.loads(path.read_text(encoding="utf-8"))
    meta_path = path.with_name(path.name.removesuffix(".json") + ".meta.json")
    topic = (
        json.loads(meta_path.read_text(encoding="utf-8"))["topic"]
        if meta_path.exists()
        else original["event_type"]
    )
    templater = _Templater(ids or {})
    document = templater.apply(original)
    return Fixture(name, topic, document, dict(templater.ids))


class _Templater:
    def __init__(self, ids: dict[str, str]) -> None:
        self.ids: dict[str, str] = dict(ids)
        self._shift: timedelta | None = None

    def apply(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {key: self.apply(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self.apply(value) for value in node]
        if isinstance(node, str):
            return self._string(node)
        return node

    def _string(self, value: str) -> str:
        if _TIMESTAMP.match(value):
            return self._moved(value)
        if _UUID.match(value) or _NAMED_ID.match(value) or _STORAGE_ID.match(value):
            return self.ids.setdefault(value, self._fresh(value))
        return value

    def _fresh(self, value: str) -> str:
        if _UUID.match(value):
            return str(uuid.uuid4())
        if _STORAGE_ID.match(value):
            return uuid.uuid4().hex
        prefix = value.split("-", 1)[0]
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    def _moved(self, value: str) -> str:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if self._shift is None:
            # Into the last hour, keeping the gaps between a message's timestamps: an
            # outcome recorded "now" by a test must not be older than the events it follows.
            back = timedelta(seconds=random.randint(60, 3600))
            self._shift = datetime.now(moment.tzinfo or UTC) - back - moment
        moment += self._shift
        text = moment.isoformat()
        return text.replace("+00:00", "Z") if value.endswith("Z") else text
