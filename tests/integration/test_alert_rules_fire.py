"""Each alert fires on the series it is about, and stays quiet on healthy ones, by Prometheus's
own rule evaluator (`promtool test rules`, Debian package `prometheus`; .ci/run installs it).

promtool compares annotations exactly, and ours are long runbook lines with templates, so the
scenarios run against a copy of the rules without annotations; `promtool check rules` checks
the real file, templates included.
"""

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import tool_on_path
from tests.unit.test_observability_files import RULES

DEFINE = 'endpoint="/internal/v1/pipelines/define",method="POST"'
TARGET = {"job": "batch_conductor_service", "instance": "bcs-1:4002"}
UP = 'up{job="batch_conductor_service",instance="bcs-1:4002"}'

# alert -> (input series, [(eval time, labels of the alerts expected then)])
SCENARIOS: dict[str, tuple[dict[str, str], list[tuple[str, list[dict[str, str]]]]]] = {
    "BcsTargetDown": (
        {UP: "1 1 0x10", 'up{job="batch_conductor_service",instance="bcs-2:4002"}': "1x12"},
        [("1m", []), ("3m", []), ("5m", [TARGET])],
    ),
    "BcsTargetAbsent": (
        # Scraped for two minutes, then the target is gone; another job's target stays.
        {UP: "1 1 1 stale", 'up{job="other",instance="other:80"}': "1x20"},
        [("2m", []), ("6m", []), ("10m", [{"job": "batch_conductor_service"}])],
    ),
    "BcsConsumerDead": (
        {
            'bcs_consumer_state{state="dead"}': "0 0 1x10",
            'bcs_consumer_state{state="running"}': "1 1 0x10",
        },
        [("1m", []), ("5m", [{}])],
    ),
    "BcsKafkaBrokerUnreachable": (
        {
            'bcs_consumer_state{state="broker_unreachable"}': "0 0 1x10",
            'bcs_consumer_state{state="running"}': "1 1 0x10",
        },
        [("2m", []), ("5m", [{}])],
    ),
    "BcsConsumerStalled": (
        {"bcs_consumer_stalled_seconds": "0+60x10"},
        [("2m", []), ("5m", [{}])],
    ),
    "BcsConsumerNotProgressing": (
        {
            'bcs_consumer_lag_messages{topic="t",partition="0"}': "5x30",
            'bcs_events_processed_total{event_type="t",outcome="applied"}': "10x30",
        },
        # Waiting and unapplied from the first minute; `for: 5m` holds it back until then.
        [("4m", []), ("20m", [{}])],
    ),
    "BcsConsumerLagGrowing": (
        {'bcs_consumer_lag_messages{topic="t",partition="0"}': "0+20x40"},
        [("10m", []), ("30m", [{"topic": "t"}])],
    ),
    "BcsAppliedEventsStale": (
        {"bcs_last_applied_event_age_seconds": "30x5 700x20"},
        [("5m", []), ("20m", [{}])],
    ),
    "BcsDeadLetterRecords": (
        {'bcs_dlq_records_total{topic="t",reason="invalid_json"}': "0 0 0 1x10"},
        [("2m", []), ("5m", [{"topic": "t", "reason": "invalid_json"}])],
    ),
    "BcsCircuitBreakerOpen": (
        {
            'bcs_circuit_breaker_open{store="redis"}': "0 1x10",
            'bcs_circuit_breaker_open{store="postgresql"}': "0x10",
        },
        [("1m", []), ("5m", [{"store": "redis"}])],
    ),
    "BcsHttp5xxRate": (
        {
            f'http_requests_total{{{DEFINE},status_code="503"}}': "0+10x20",
            f'http_requests_total{{{DEFINE},status_code="200"}}': "0+10x20",
        },
        [("3m", []), ("15m", [{}])],
    ),
    "BcsDefineLatencyP99High": (
        {
            f'http_request_duration_seconds_bucket{{{DEFINE},le="0.25"}}': "0x30",
            f'http_request_duration_seconds_bucket{{{DEFINE},le="0.5"}}': "0+10x30",
            f'http_request_duration_seconds_bucket{{{DEFINE},le="+Inf"}}': "0+10x30",
        },
        [("5m", []), ("20m", [{}])],
    ),
}

# The same series, healthy: none of the alerts may fire.
HEALTHY_SERIES = {
    UP: "1x30",
    'bcs_consumer_state{state="running"}': "1x30",
    'bcs_consumer_state{state="broker_unreachable"}': "0x30",
    "bcs_consumer_stalled_seconds": "0x30",
    'bcs_consumer_lag_messages{topic="t",partition="0"}': "5x30",
    'bcs_events_processed_total{event_type="t",outcome="applied"}': "0+60x30",
    "bcs_last_applied_event_age_seconds": "2x30",
    'bcs_dlq_records_total{topic="t",reason="invalid_json"}': "0x30",
    'bcs_circuit_breaker_open{store="redis"}': "0x30",
    f'http_requests_total{{{DEFINE},status_code="200"}}': "0+100x30",
    f'http_requests_total{{{DEFINE},status_code="503"}}': "0x30",
    f'http_request_duration_seconds_bucket{{{DEFINE},le="0.25"}}': "0+100x30",
    f'http_request_duration_seconds_bucket{{{DEFINE},le="+Inf"}}': "0+100x30",
}


def promtool() -> str:
    return tool_on_path("promtool", "prometheus")


def rules_without_annotations() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return rules


def alerts_expected(alert: str, labels: list[dict[str, str]]) -> list[dict[str, Any]]:
    severity = next(
        rule["labels"]["severity"]
        for group in rules_without_annotations()["groups"]
        for rule in group["rules"]
        if rule["alert"] == alert
    )
    return [{"exp_labels": {**extra, "severity": severity}} for extra in labels]


def run_promtool_tests(tmp_path: Path, tests: list[dict[str, Any]]) -> None:
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(rules_without_annotations()))
    test_file = tmp_path / "tests.yml"
    test_file.write_text(
        yaml.safe_dump(
            {"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": tests}
        )
    )
    result = subprocess.run(
        [promtool(), "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules_and_the_prometheus_config() -> None:
    checked = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = RULES.parents[1] / "prometheus.yml"
    checked = subprocess.run(
        [promtool(), "check", "config", "--syntax-only", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_alert_has_a_scenario() -> None:
    alerts = {
        rule["alert"] for group in rules_without_annotations()["groups"] for rule in group["rules"]
    }
    assert alerts == set(SCENARIOS)


@pytest.mark.parametrize("alert", sorted(SCENARIOS))
def test_the_alert_fires_on_its_trouble_and_not_before(alert: str, tmp_path: Path) -> None:
    series, evaluations = SCENARIOS[alert]
    run_promtool_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": at,
                        "alertname": alert,
                        "exp_alerts": alerts_expected(alert, labels),
                    }
                    for at, labels in evaluations
                ],
            }
        ],
    )


def test_no_alert_fires_on_a_healthy_service(tmp_path: Path) -> None:
    run_promtool_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in HEALTHY_SERIES.items()],
                "alert_rule_test": [
                    {"eval_time": "30m", "alertname": alert, "exp_alerts": []}
                    for alert in sorted(SCENARIOS)
                ],
            }
        ],
    )
