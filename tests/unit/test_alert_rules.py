"""The Prometheus alerting rules (infra/prometheus/rules/), their unit tests and their runbook.

- `promtool check rules` on the rules and `promtool test rules` on infra/prometheus/tests/*.yml, where
  every rule has series that fire it and series that must not (skipped, with the reason, without
  promtool: Debian package `prometheus`);
- every metric a rule or a dashboard panel names is one the services define (read from the
  prometheus_client constructors in services/, without importing them), with the labels it matches
  on, so that a renamed metric or label cannot silently disable a rule;
- every rule has a severity, a summary, a description and a runbook_url naming a subsection of the
  "Runbook" section of docs/OPERATIONS.md, and that section has no subsection without a rule;
- the Grafana dashboards show every metric a rule watches, and the firing alerts;
- prometheus.yml loads the rules and docker-compose.yml mounts them where it looks.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "infra" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
DASHBOARDS = ROOT / "infra" / "grafana" / "dashboards"
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
COMPOSE_FILE = ROOT / "docker-compose.yml"
SERVICES = ROOT / "services"

SEVERITIES = {"critical", "warning", "info"}
# Series Prometheus makes itself, and the labels it adds to every scraped one.
PROMETHEUS_SERIES = {"up", "ALERTS", "ALERTS_FOR_STATE"}
TARGET_LABELS = {"job", "instance"}
METRIC_KINDS = {"Counter", "Gauge", "Histogram", "Summary"}


# ---------------------------------------------------------------------------------------------------------
# What the files say


def _rule_files() -> list[Path]:
    paths = sorted(RULES_DIR.glob("*.yml"))
    assert paths, f"no rule file in {RULES_DIR}"
    return paths


def _test_files() -> list[Path]:
    paths = sorted(RULE_TESTS_DIR.glob("*.yml"))
    assert paths, f"no promtool test in {RULE_TESTS_DIR}"
    return paths


@cache
def _alerting_rules() -> tuple[dict[str, Any], ...]:
    rules: list[dict[str, Any]] = []
    for path in _rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(rule for rule in group["rules"] if "alert" in rule)
    return tuple(rules)


def _dashboard_expressions() -> list[str]:
    expressions: list[str] = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text()).get("panels", []):
            for inner in (panel, *panel.get("panels", [])):
                expressions.extend(t["expr"] for t in inner.get("targets", []) if t.get("expr"))
    return expressions


@dataclass(frozen=True)
class Metric:
    kind: str
    labels: frozenset[str]


@cache
def _services_sources() -> tuple[str, ...]:
    return tuple(path.read_text() for path in sorted(SERVICES.rglob("*.py")))


@cache
def _services_code() -> tuple[ast.AST, ...]:
    """The syntax trees of the modules of services/ that use prometheus_client."""
    return tuple(ast.parse(source) for source in _services_sources() if "prometheus_client" in source)


@cache
def _defined_metrics() -> dict[str, Metric]:
    """Every series name the services export, from their prometheus_client constructors: a Counter
    "x" or "x_total" is exported as x_total, a Histogram "x" as x_bucket, x_sum and x_count."""
    metrics: dict[str, Metric] = {}
    for tree in _services_code():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            kind = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else ""
            )
            first = node.args[0]
            if kind not in METRIC_KINDS or not (
                isinstance(first, ast.Constant) and isinstance(first.value, str)
            ):
                continue
            labels_node = node.args[2] if len(node.args) > 2 else None
            for keyword in node.keywords:
                if keyword.arg == "labelnames":
                    labels_node = keyword.value
            labels = frozenset(
                element.value
                for element in getattr(labels_node, "elts", [])
                if isinstance(element, ast.Constant) and isinstance(element.value, str)
            )
            name = first.value
            if kind == "Counter":
                names = [name.removesuffix("_total") + "_total"]
            elif kind == "Histogram":
                names = [f"{name}_bucket", f"{name}_sum", f"{name}_count"]
            elif kind == "Summary":
                names = [name, f"{name}_sum", f"{name}_count"]
            else:
                names = [name]
            for exported in names:
                metrics[exported] = Metric(kind, labels | ({"le"} if exported.endswith("_bucket") else set()))
    return metrics


def _written_in_services(value: str) -> bool:
    """Whether services/ writes the string literal ``value`` (a label value such as "dead_letter")."""
    quoted = re.compile(rf"[\"']{re.escape(value)}[\"']")
    return any(quoted.search(source) for source in _services_sources())


SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
METRIC_TOKEN = re.compile(r"\bbarometre_[a-zA-Z0-9_:]*")


def _problems(expr: str) -> list[str]:
    """What an expression names that the services do not define: metrics, label names, label values."""
    defined = _defined_metrics()
    problems = [
        f"unknown metric {name}"
        for name in sorted(set(METRIC_TOKEN.findall(re.sub(r'"[^"]*"', '""', expr))))
        if name not in defined
    ]
    for name, matchers in SELECTOR.findall(expr):
        if name in PROMETHEUS_SERIES or name not in defined:
            continue  # `up{job=…}`; an unknown name is reported above
        for label, op, value in MATCHER.findall(matchers):
            if label in TARGET_LABELS:
                continue
            if label not in defined[name].labels:
                problems.append(f"{name} has no label {label!r}")
                continue
            # A plain value (or each plain alternative of a regex) must be one the code writes.
            values = [value] if op in ("=", "!=") else value.split("|")
            for wanted in values:
                if re.fullmatch(r"[a-z][a-z0-9_]*", wanted) and not _written_in_services(wanted):
                    problems.append(f'{name}{{{label}{op}"{value}"}}: no {wanted!r} in services/')
    return problems


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _runbook_headings() -> list[str]:
    """The subsection titles of the "## Runbook" section of docs/OPERATIONS.md."""
    section = re.search(r"^## Runbook\n(.*?)(?=^## |\Z)", OPERATIONS.read_text(), re.MULTILINE | re.DOTALL)
    assert section, "docs/OPERATIONS.md has no '## Runbook' section"
    return re.findall(r"^### (.+)$", section.group(1), re.MULTILINE)


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip(
            "promtool is not installed (Debian package `prometheus`): the alerting rules are not checked"
        )
    return promtool


# ---------------------------------------------------------------------------------------------------------
# promtool


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", *map(str, _rule_files())],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    # Relative paths in the test files (rule_files) are read from each file's directory.
    result = subprocess.run(
        [_promtool(), "test", "rules", *map(str, _test_files())],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_is_tested_firing_and_not_firing() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in _test_files():
        spec = yaml.safe_load(path.read_text())
        assert [(path.parent / f).resolve() for f in spec["rule_files"]] == [
            p.resolve() for p in _rule_files()
        ]
        for test in spec["tests"]:
            for case in test.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in _alerting_rules()}
    assert names - fired == set(), "rules no test makes fire"
    assert names - quiet == set(), "rules no test shows quiet"
    assert (fired | quiet) - names == set(), "tests of rules that do not exist"


# ---------------------------------------------------------------------------------------------------------
# Metric names


def test_the_metric_reader_finds_the_services_metrics() -> None:
    defined = _defined_metrics()
    assert defined["barometre_scoring_events_total"] == Metric("Counter", frozenset({"outcome"}))
    assert defined["barometre_scoring_consumer_lag"] == Metric("Gauge", frozenset({"topic", "partition"}))
    assert "barometre_http_request_duration_seconds_bucket" in defined
    assert "barometre_api_sse_clients" in defined
    # And it would notice a renamed metric, label or value.
    assert _problems("rate(barometre_scoring_event_total[5m])") == [
        "unknown metric barometre_scoring_event_total"
    ]
    assert _problems('barometre_scoring_events_total{result="dead_letter"}') == [
        "barometre_scoring_events_total has no label 'result'"
    ]
    assert _problems('barometre_scoring_events_total{outcome="dead_lettered"}') == [
        "barometre_scoring_events_total{outcome=\"dead_lettered\"}: no 'dead_lettered' in services/"
    ]
    assert _problems('barometre_poller_failures_total{job="poller", reason!~"not_found|hidden"}') == []


def test_rules_name_only_metrics_the_services_define() -> None:
    problems = {rule["alert"]: _problems(rule["expr"]) for rule in _alerting_rules()}
    assert {alert: found for alert, found in problems.items() if found} == {}


def test_dashboards_name_only_metrics_the_services_define() -> None:
    problems = {expr: _problems(expr) for expr in _dashboard_expressions()}
    assert {expr: found for expr, found in problems.items() if found} == {}


def test_dashboards_show_every_metric_a_rule_watches() -> None:
    shown = set(METRIC_TOKEN.findall("\n".join(_dashboard_expressions())))
    watched = {name for rule in _alerting_rules() for name in METRIC_TOKEN.findall(rule["expr"])}
    assert watched - shown == set(), "metrics of alerting rules without a dashboard panel"
    assert "ALERTS" in "\n".join(_dashboard_expressions()), "no panel of the firing alerts"


# ---------------------------------------------------------------------------------------------------------
# Labels, annotations, runbook


def test_every_rule_has_severity_summary_description_and_runbook() -> None:
    names = [rule["alert"] for rule in _alerting_rules()]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in _alerting_rules():
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, rule["alert"]
        assert annotations["summary"].strip() and annotations["description"].strip(), rule["alert"]
        assert annotations["runbook_url"] == f"docs/OPERATIONS.md#{rule['alert'].lower()}", rule["alert"]


def test_every_runbook_url_names_a_subsection_of_the_runbook() -> None:
    headings = _runbook_headings()
    anchors = {_github_anchor(heading) for heading in headings}
    for rule in _alerting_rules():
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert (ROOT / path).resolve() == OPERATIONS.resolve(), rule["alert"]
        assert anchor in anchors, (rule["alert"], anchor)
    # One subsection per rule, none for a rule that no longer exists.
    assert sorted(headings) == sorted(rule["alert"] for rule in _alerting_rules())
    for heading in headings:
        assert "**Means**" in _runbook_text(heading) and "**Do**" in _runbook_text(heading), heading


def _runbook_text(heading: str) -> str:
    text = OPERATIONS.read_text()
    start = text.index(f"### {heading}\n")
    end = min(
        (i for i in (text.find("\n## ", start), text.find("\n### ", start + 1)) if i != -1), default=len(text)
    )
    return text[start:end]


def test_github_anchor() -> None:
    assert _github_anchor("BarometreTargetDown") == "barometretargetdown"
    assert _github_anchor("Sizing: partitions and scoring workers") == "sizing-partitions-and-scoring-workers"


# ---------------------------------------------------------------------------------------------------------
# Loaded and mounted


def test_prometheus_loads_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    loaded = sorted(path for pattern in config["rule_files"] for path in PROMETHEUS_DIR.glob(pattern))
    assert loaded == _rule_files()


def test_compose_mounts_the_rules_where_prometheus_reads_them() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./infra/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes
    # rule_files are relative to the config file: /etc/prometheus/rules/*.yml.
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == ["rules/*.yml"]
    assert "./infra/prometheus/rules:/etc/prometheus/rules:ro" in volumes
