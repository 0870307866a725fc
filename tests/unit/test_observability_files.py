"""deploy/: the alert rules and the dashboard use only what the service exports, and parse.

No Prometheus or Grafana runs here, so the files are checked statically: every PromQL
expression is parsed, and every metric and label it selects is compared with the samples of a
freshly built, exercised BcsMetrics; every label value it matches on, with the values the
service's code gives that label.
"""

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from batch_conductor_service.consumer.health import ConsumerPhase
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.wiring.settings import Settings
from batch_conductor_service.wiring.tracing import tracing_config
from common_core.events import DeadLetterReason
from huleedu_service_libs.http_metrics import KNOWN_METHODS, UNMATCHED_ENDPOINT
from tests.unit.conftest import unit_settings
from tests.unit.test_deploy_files import dockerfile_instructions

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*(REPO_ROOT / "services").rglob("*.py"), *(REPO_ROOT / "libs").rglob("*.py")]
DEPLOY = REPO_ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "bcs-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "bcs.json"
# Grafana substitutes its own variables before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$instance": ".*"}
# Prometheus adds these to every series it scrapes, and makes `up` itself for each target.
TARGET_LABELS = {"job", "instance"}
PROMETHEUS_SERIES = {"up": TARGET_LABELS}
INSTANCE_MATCHER = ("instance", "$instance")


def scrape_job() -> str:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    name: str = job["job_name"]
    return name


def exercised_metrics() -> CollectorRegistry:
    """Every metric once, with positional labels, so a changed label set fails here."""
    registry = CollectorRegistry()
    metrics = BcsMetrics(registry)
    metrics.http.requests.labels("POST", "/internal/v1/pipelines/define", "200").inc()
    metrics.http.duration.labels("POST", "/internal/v1/pipelines/define").observe(0.01)
    metrics.pipeline_resolutions.labels("success").inc()
    metrics.pipeline_steps_pruned.labels("spellcheck").inc()
    metrics.events_processed.labels("topic", "applied").inc()
    metrics.dlq_records.labels("topic", "invalid_json").inc()
    metrics.consumer_lag.labels("topic", "0").set(1)
    metrics.last_event_age.set(1)
    metrics.consumer_errors.labels("kafka").inc()
    metrics.consumer_batch_seconds.observe(0.01)
    metrics.repository_atomic_retries.labels("apply").inc()
    metrics.repository_fallbacks.labels("apply").inc()
    metrics.repository_errors.labels("redis", "apply").inc()
    metrics.circuit_state.labels("redis").set(0)
    metrics.repository_read_fallbacks.inc()
    metrics.state_rebuilds.inc()
    metrics.unplaced_results.labels("parked").inc()
    metrics.internal_auth_failures.labels("missing").inc()
    metrics.trace_spans_exported.inc()
    metrics.trace_spans_dropped.labels("queue_full").inc()
    metrics.track_consumer(lambda: ("dead", 12.5), ["running", "dead"])
    return registry


def exported_labels() -> dict[str, set[str]]:
    """Sample name (with its _total, _bucket, _count, _sum suffix) -> its label names, as
    Prometheus stores them (with the target's labels)."""
    exported: dict[str, set[str]] = {
        name: set(labels) for name, labels in PROMETHEUS_SERIES.items()
    }
    for family in exercised_metrics().collect():
        assert family.samples, f"{family.name} was not exercised by exercised_metrics()"
        for sample in family.samples:
            exported.setdefault(sample.name, set(TARGET_LABELS)).update(sample.labels)
    return exported


def routes() -> frozenset[str]:
    from batch_conductor_service.wiring.app import create_app

    return frozenset(rule.rule for rule in create_app(unit_settings()).url_map.iter_rules())


REPOSITORY_OPERATIONS = frozenset(
    {
        *("read", "apply", "restore", "record", "load", "version", "health"),
        *("lost_keys", "parse", "behind_record"),
        *("placement_index", "placement_lookup", "placement_park", "placement_parked"),
        *("placement_unpark", "placement_count"),
    }
)
HTTP_METHODS = frozenset({*KNOWN_METHODS, "other"})
STORES = frozenset({"redis", "postgresql"})

# The values of every label whose values are a closed set, by metric family (a counter's name
# without _total), as the service gives them (checked against the source below). Open sets
# (topic, partition, step, status_code, le) are not listed.
LABEL_VALUES: dict[tuple[str, str], frozenset[str]] = {
    ("bcs_pipeline_resolutions", "status"): frozenset(
        {"success", "unknown_pipeline", "precondition_failed", "state_unavailable", "failure"}
    ),
    ("bcs_events_processed", "outcome"): frozenset(
        {"applied", "duplicate", "dead_lettered", "replay_failed", "retried", "parked", "ignored"}
    ),
    ("bcs_dlq_records", "reason"): frozenset(r.value for r in DeadLetterReason),
    ("bcs_consumer_errors", "kind"): frozenset(
        {"kafka", "infrastructure", "isolating", "unexpected"}
    ),
    ("bcs_repository_atomic_retries", "operation"): frozenset({"apply"}),
    ("bcs_repository_fallback_writes", "operation"): frozenset({"apply"}),
    ("bcs_repository_errors", "store"): STORES,
    ("bcs_repository_errors", "operation"): REPOSITORY_OPERATIONS,
    ("bcs_circuit_breaker_open", "store"): STORES,
    ("bcs_unplaced_results", "outcome"): frozenset(
        {"parked", "placed_on_arrival", "placed_by_roster", "expired", "refused", "failed"}
    ),
    ("bcs_internal_auth_failures", "reason"): frozenset({"missing", "invalid"}),
    ("bcs_trace_spans_dropped", "reason"): frozenset({"queue_full", "export_failed"}),
    ("bcs_consumer_state", "state"): frozenset(p.value for p in ConsumerPhase),
    ("http_requests", "method"): HTTP_METHODS,
    ("http_request_duration_seconds", "method"): HTTP_METHODS,
}


def family_of(sample: str) -> str:
    for suffix in ("_total", "_bucket", "_sum", "_count"):
        sample = sample.removesuffix(suffix)
    return sample


def label_values(sample: str, label: str) -> frozenset[str] | None:
    if label == "endpoint" and sample.startswith("http_"):
        return routes() | {UNMATCHED_ENDPOINT}
    return LABEL_VALUES.get((family_of(sample), label))


def string_literals() -> set[str]:
    return {
        node.value
        for path in SOURCES
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def literal_label_values() -> dict[str, set[tuple[int, str]]]:
    """Metric family -> (position, value) of every string literal the code passes to
    .labels() of one of BcsMetrics's attributes."""
    metrics = BcsMetrics(CollectorRegistry())
    found: dict[str, set[tuple[int, str]]] = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "labels"
                and isinstance(node.func.value, ast.Attribute)
            ):
                continue
            metric = getattr(metrics, node.func.value.attr, None)
            if metric is None:
                continue
            name = metric._name
            for at, arg in enumerate(node.args):
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.setdefault(name, set()).add((at, arg.value))
    return found


def standard_families() -> set[str]:
    """The families of prometheus_client's process, platform and GC collectors."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return {family.name for family in registry.collect()}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_targets() -> list[dict[str, Any]]:
    return [target for panel in dashboard()["panels"] for target in panel.get("targets", [])]


def grafana_expr(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def all_expressions() -> list[str]:
    rules = [rule["expr"] for rule in alert_rules()]
    return rules + [grafana_expr(target["expr"]) for target in dashboard_targets()]


def selectors(node: Any) -> Iterator[Any]:
    """Every vector selector in a parsed PromQL expression."""
    if isinstance(node, promql_parser.VectorSelector):
        yield node
    elif isinstance(node, promql_parser.MatrixSelector):
        yield node.vector_selector
    elif isinstance(node, promql_parser.BinaryExpr):
        yield from selectors(node.lhs)
        yield from selectors(node.rhs)
    elif isinstance(node, promql_parser.Call):
        for arg in node.args:
            yield from selectors(arg)
    elif isinstance(
        node,
        promql_parser.AggregateExpr
        | promql_parser.ParenExpr
        | promql_parser.UnaryExpr
        | promql_parser.SubqueryExpr,
    ):
        yield from selectors(node.expr)


def grouping_labels(node: Any) -> Iterator[str]:
    """Label names in by (...), without (...), on (...) and ignoring (...) clauses."""
    modifier = getattr(node, "modifier", None)
    if isinstance(node, promql_parser.AggregateExpr) and modifier is not None:
        yield from modifier.labels
    is_binary = isinstance(node, promql_parser.BinaryExpr)
    if is_binary and modifier is not None and modifier.matching is not None:
        yield from modifier.matching.labels
    for child in ("lhs", "rhs", "expr"):
        if hasattr(node, child):
            yield from grouping_labels(getattr(node, child))
    if isinstance(node, promql_parser.Call):
        for arg in node.args:
            yield from grouping_labels(arg)


# Not in /metrics at start-up by design: Prometheus makes `up` itself, and a partition's lag is
# known once the broker assigns the partition.
NOT_AT_START_UP = {"up", "bcs_consumer_lag_messages"}


def matches(selector: Any, labels: dict[str, str]) -> bool:
    """Whether a sample's labels satisfy the selector's matchers, the target's aside."""
    for matcher in selector.matchers.matchers:
        if matcher.name in TARGET_LABELS:
            continue
        value = labels.get(matcher.name, "")
        if matcher.op == promql_parser.MatchOp.Equal:
            ok = value == matcher.value
        elif matcher.op == promql_parser.MatchOp.NotEqual:
            ok = value != matcher.value
        else:  # PromQL regexes match the whole value
            found = re.fullmatch(matcher.value, value) is not None
            ok = found if matcher.op == promql_parser.MatchOp.Re else not found
        if not ok:
            return False
    return True


def selected_but_absent(metrics_text: str) -> set[str]:
    """The metrics a rule or panel selects of which /metrics has no series it matches."""
    samples = [
        (sample.name, sample.labels)
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
    ]
    return {
        selector.name
        for expr in all_expressions()
        for selector in selectors(promql_parser.parse(expr))
        if selector.name not in NOT_AT_START_UP
        and not any(name == selector.name and matches(selector, labels) for name, labels in samples)
    }


@pytest.mark.parametrize("expr", all_expressions())
def test_every_expression_selects_only_exported_metrics_and_labels(expr: str) -> None:
    exported = exported_labels()
    parsed = promql_parser.parse(expr)
    found = list(selectors(parsed))
    assert found, f"no metric in {expr!r}"
    used_labels: set[str] = set()
    for selector in found:
        assert selector.name in exported, f"{selector.name} is not exported by the service"
        matched = {m.name for m in selector.matchers.matchers}
        assert matched <= exported[selector.name], (selector.name, matched)
        used_labels |= exported[selector.name]
    assert set(grouping_labels(parsed)) <= used_labels, expr


@pytest.mark.parametrize("expr", all_expressions())
def test_every_label_value_matched_on_is_one_the_service_gives(expr: str) -> None:
    for selector in selectors(promql_parser.parse(expr)):
        for matcher in selector.matchers.matchers:
            known = label_values(selector.name, matcher.name)
            if known is None:
                continue
            if matcher.op in (promql_parser.MatchOp.Re, promql_parser.MatchOp.NotRe):
                # A regex that matches no value the service gives selects nothing (or all).
                assert any(re.fullmatch(matcher.value, v) for v in known), (selector.name, matcher)
            else:
                assert matcher.value in known, (selector.name, matcher.name, matcher.value)


def test_the_label_values_listed_here_are_the_ones_the_code_gives() -> None:
    # Each listed value is written somewhere in the source (a value the code dropped, like
    # unplaced_results' not_terminal, fails here)...
    literals = string_literals()
    for (metric, label), values in LABEL_VALUES.items():
        assert values <= literals, (metric, label, values - literals)
    # ...and each value the code passes to .labels() literally is listed (a new one fails).
    families = {family.name: family for family in exercised_metrics().collect()}
    found = literal_label_values()
    assert found, "no .labels() call with a literal value found: the scan is broken"
    for metric, passed in found.items():
        names = [n for n in families[metric].samples[0].labels if n != "le"]
        for at, value in passed:
            known = LABEL_VALUES.get((metric, names[at]))
            if known is not None:
                assert value in known, (metric, names[at], value)


def test_a_label_value_the_service_does_not_give_is_refused() -> None:
    for expr in (
        'sum(rate(bcs_unplaced_results_total{outcome="not_terminal"}[5m]))',
        'sum(rate(bcs_repository_errors_total{operation="snapshot_read"}[5m]))',
        'rate(http_requests_total{endpoint="/internal/v1/pipelines/resolve"}[5m])',
        'rate(bcs_events_processed_total{outcome=~"skipped|lost"}[5m])',
    ):
        with pytest.raises(AssertionError):
            test_every_label_value_matched_on_is_one_the_service_gives(expr)


def test_the_expression_walker_finds_selectors_in_every_kind_of_node() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le) (rate(a_bucket[5m])))"
        " / on() (-b or max_over_time((c)[10m:1m]))"
    )
    names = {selector.name for selector in selectors(promql_parser.parse(expr))}
    assert names == {"a_bucket", "b", "c"}
    assert set(grouping_labels(promql_parser.parse(expr))) == {"le"}


def test_alert_rules_cover_what_an_operator_must_hear_about() -> None:
    exprs = " ".join(rule["expr"] for rule in alert_rules())
    for needed in (
        "bcs_consumer_lag_messages",
        "bcs_events_processed_total",
        "bcs_dlq_records_total",
        "bcs_circuit_breaker_open",
        'http_requests_total{status_code=~"5.."}',
        'endpoint="/internal/v1/pipelines/define"',
        "bcs_last_applied_event_age_seconds",
        'bcs_consumer_state{state="dead"}',
        "bcs_consumer_stalled_seconds",
        f'up{{job="{scrape_job()}"}} == 0',
        f'absent(up{{job="{scrape_job()}"}})',
    ):
        assert needed in exprs, needed


def test_every_alert_has_a_name_severity_summary_and_runbook() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert re.fullmatch(r"Bcs[A-Za-z0-9]+", rule["alert"])
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"].strip()
        assert len(rule["annotations"]["runbook"].split()) >= 8, rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"])


def test_dashboard_panels_query_the_provisioned_datasource() -> None:
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    uids = {source["uid"] for source in datasources}
    board = dashboard()
    assert board["uid"]
    panels = [panel for panel in board["panels"] if panel["type"] != "row"]
    assert panels
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids


def charted_names() -> set[str]:
    return {
        selector.name
        for target in dashboard_targets()
        for selector in selectors(promql_parser.parse(grafana_expr(target["expr"])))
    }


def test_dashboard_charts_every_metric_the_service_declares() -> None:
    charted = {
        name.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
        for name in charted_names()
    }
    # prometheus_client's standard collectors are charted by choice (below), not all of them.
    families = {family.name for family in exercised_metrics().collect()} - standard_families()
    # Counter families are named without _total, info families without _info; their samples
    # carry the suffix.
    charted = {name.removesuffix("_total").removesuffix("_info") for name in charted}
    assert families <= charted, families - charted


def test_dashboard_charts_the_targets_the_process_and_the_build() -> None:
    charted = charted_names()
    for needed in (
        "up",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "bcs_build_info",
    ):
        assert needed in charted, needed


def test_the_dashboard_has_an_instance_variable_every_query_selects_by() -> None:
    board = dashboard()
    [variable] = [v for v in board["templating"]["list"] if v["name"] == "instance"]
    assert variable["type"] == "query"
    assert variable["includeAll"]
    assert variable["multi"]
    query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
    assert query == f'label_values(up{{job="{scrape_job()}"}}, instance)'
    datasources = {target["datasource"]["uid"] for target in dashboard_targets()}
    assert variable["datasource"]["uid"] in datasources
    for target in dashboard_targets():
        # The variable left in, to see it used; only the range is substituted.
        expr = target["expr"].replace("$__rate_interval", GRAFANA_VARIABLES["$__rate_interval"])
        for selector in selectors(promql_parser.parse(expr)):
            matchers = {(m.name, m.value, str(m.op)) for m in selector.matchers.matchers}
            assert (*INSTANCE_MATCHER, str(promql_parser.MatchOp.Re)) in matchers, target["expr"]


def test_the_rules_select_the_job_prometheus_scrapes() -> None:
    jobs = {
        matcher.value
        for expr in all_expressions()
        for selector in selectors(promql_parser.parse(expr))
        for matcher in selector.matchers.matchers
        if matcher.name == "job"
    }
    assert jobs == {scrape_job()}


def observability_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "observability.compose.yml").read_text())
    return loaded


def volume_mounts(service: str) -> dict[str, str]:
    volumes = observability_compose()["services"][service]["volumes"]
    return dict(volume.split(":")[:2] for volume in volumes)


def test_compose_includes_prometheus_grafana_and_jaeger_behind_the_observability_profile() -> None:
    main = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert "deploy/observability.compose.yml" in main["include"]
    services = observability_compose()["services"]
    assert set(services) == {"prometheus", "grafana", "jaeger"}
    for name, service in services.items():
        assert service["profiles"] == ["observability"], name
        assert service["restart"] == "unless-stopped", name
        assert "test" in service["healthcheck"], name
        # Pinned: a release, never a moving tag.
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", service["image"]), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"


def test_jaeger_receives_the_services_traces_over_otlp() -> None:
    jaeger = observability_compose()["services"]["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:")
    published = {port.split(":")[0] for port in jaeger["ports"]}
    assert {"16686", "4317", "4318"} <= published
    main = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    env = main["services"]["batch_conductor_service"]["environment"]
    # OTLP/HTTP on Jaeger's 4318, by its service name on the compose network.
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    # As the service reads the stack's environment: tracing on, to that endpoint.
    ours = {k.removeprefix("BCS_"): v for k, v in env.items() if k.startswith("BCS_")}
    settings = Settings(**ours)
    config = tracing_config(settings, env)
    assert config is not None
    assert config.protocol == "http/protobuf"


def test_prometheus_scrapes_the_compose_service_and_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    main = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    port = main["services"]["batch_conductor_service"]["environment"]["BCS_HTTP_PORT"]
    assert targets == [f"batch_conductor_service:{port}"]
    mounts = volume_mounts("prometheus")
    rules_dir = mounts["./prometheus/rules"]
    assert config["rule_files"] == [f"{rules_dir}/*.yml"]
    assert RULES.parent == DEPLOY / "prometheus" / "rules"


def test_grafana_provisioning_points_at_the_mounted_dashboards() -> None:
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "bcs.yml").read_text()
    )["providers"][0]
    mounts = volume_mounts("grafana")
    assert provider["options"]["path"] == mounts["./grafana/dashboards"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"


def test_dockerignore_keeps_the_venv_and_git_out_but_not_what_the_image_copies() -> None:
    ignored = {
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git"} <= ignored
    copied = {
        source
        for keyword, rest in dockerfile_instructions()
        if keyword == "COPY" and not rest.startswith("--from")
        for source in rest.split()[:-1]
    }
    assert copied
    assert not copied & ignored
