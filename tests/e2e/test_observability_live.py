"""The alert rules and the dashboard against a running service's own /metrics."""

import re

import promql_parser

from tests.e2e.conftest import RunningService
from tests.unit.test_observability_files import all_expressions, selectors

_SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def family_of(sample_name: str, families: set[str]) -> str | None:
    if sample_name in families:
        return sample_name
    for suffix in _SUFFIXES:
        if sample_name.endswith(suffix) and sample_name.removesuffix(suffix) in families:
            return sample_name.removesuffix(suffix)
    return None


def test_every_metric_the_rules_and_dashboard_use_is_served_by_the_running_service(
    service: RunningService,
) -> None:
    status, _, body = service.request("GET", "/metrics")
    assert status == 200
    # Every family has its HELP line, even one whose labelled series have not appeared yet.
    families = set(re.findall(r"^# HELP (\S+) ", body.decode(), flags=re.MULTILINE))
    used = {
        selector.name
        for expr in all_expressions()
        for selector in selectors(promql_parser.parse(expr))
    }
    assert used
    missing = {name for name in used if family_of(name, families) is None}
    assert not missing, missing
