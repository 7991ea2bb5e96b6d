"""What the monitoring tests need to read the shipped rules and dashboard: the metric names a PromQL
expression uses (a small lexer, enough for our expressions: strings, label matchers, ranges, grouping
clauses and function calls are set aside; what is left are metric names), and the sample names a
registry can expose."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "config" / "prometheus" / "prometheusrule.yaml"
RULE_TESTS = ROOT / "config" / "prometheus" / "tests"
DASHBOARD = ROOT / "config" / "grafana" / "incluster-ipam.json"

_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
)
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created", ""),
    "gauge": ("",),
    "info": ("_info",),
}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (Grafana variables such as `$job` ignored)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\w+", " ", text)
    text = re.sub(r"\b\d+(?:\.\d+)?(?:ms|[smhdwy])?\b", " ", text)  # numbers and durations
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function
        if match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


def exposable(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry's metrics can expose (whether or not a child exists yet)."""
    names = set()
    for family in registry.collect():
        for suffix in _SUFFIXES[family.type]:
            names.add(family.name + suffix)
    return names


def rule_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(RULES.read_text())["spec"]
    return spec


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_spec()["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(board: dict[str, Any]) -> list[str]:
    """Every panel query and the PromQL inside template-variable queries (`label_values(metric, label)`)."""
    exprs = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found = re.fullmatch(r"label_values\((.+),\s*\w+\)", query["query"])
            assert found, f"templating variable {variable['name']}: unexpected query {query['query']!r}"
            exprs.append(found.group(1))
    return exprs


def used_metric_names() -> set[str]:
    """Every metric name the shipped rules and dashboard use."""
    names = set()
    for rule in alerts():
        names |= metric_names(rule["expr"])
    for expr in dashboard_exprs(dashboard()):
        names |= metric_names(expr)
    return names
