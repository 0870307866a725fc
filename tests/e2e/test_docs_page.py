"""/docs in a real browser: Debian's headless Chromium renders the page of a running service on
127.0.0.1, and the page shows every operation of /openapi.json, its script and style fetched
from the service itself (the page's Content-Security-Policy allows no other origin)."""

import json
import re
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import tool_on_path
from tests.e2e.conftest import RunningService

pytestmark = pytest.mark.e2e


@pytest.fixture
def chromium() -> str:
    return tool_on_path("chromium", "chromium")


def browse(chromium: str, profile: Path, url: str, *action: str) -> str:
    """Chromium's stdout after loading `url` and running the page's scripts until they settle
    (virtual time, so a slow machine waits longer rather than cutting the page short)."""
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # as root, in CI
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--window-size=1280,1400",
            *action,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def requests_served(service: RunningService) -> dict[str, float]:
    """GET requests answered 200, by route, from the service's own metrics."""
    _, _, body = service.request("GET", "/metrics")
    served: dict[str, float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "http_requests_total"
                and labels.get("method") == "GET"
                and labels.get("status_code") == "200"
            ):
                served[labels["endpoint"]] = served.get(labels["endpoint"], 0) + sample.value
    return served


def test_the_browser_renders_every_operation_from_the_services_own_files(
    service: RunningService, chromium: str, tmp_path: Path
) -> None:
    _, _, body = service.request("GET", "/openapi.json")
    paths = set(json.loads(body)["paths"])

    dom = browse(chromium, tmp_path / "profile", f"{service.base_url}/docs", "--dump-dom")

    assert "Batch Conductor Service" in dom
    rendered = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    assert rendered == paths
    served = requests_served(service)
    # The page, its start script, the document, and the bundle's script and style at least.
    assert served.get("/docs", 0) >= 1
    assert served.get("/docs/start.js", 0) >= 1
    assert served.get("/openapi.json", 0) >= 2  # the browser's, and this test's own
    assert served.get("/docs/<asset>", 0) >= 2

    # What a reader sees, kept in tmp_path: a blank page would compress to a few kilobytes.
    screenshot = tmp_path / "docs.png"
    browse(chromium, tmp_path / "profile", f"{service.base_url}/docs", f"--screenshot={screenshot}")
    image = screenshot.read_bytes()
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")
    assert (width, height) == (1280, 1400)
    assert len(image) > 20_000
