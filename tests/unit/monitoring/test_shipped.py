"""The shipped alerts and dashboard (config/prometheus, config/grafana) are over metrics the provider
really registers, each alert links to its runbook, and neither is part of the clusterctl components."""

import importlib.util
import re
from typing import Any

import pytest

from incluster_ipam.provider.metrics import Metrics

from .promql import (
    ROOT,
    alerts,
    dashboard,
    dashboard_exprs,
    exposable,
    metric_names,
    panels,
    used_metric_names,
)

OPERATIONS = ROOT / "docs" / "operations.md"


def test_the_lexer_finds_metric_names_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, webhook) (rate(a_bucket{job=~"$job",x="by(y)"}[5m])))'
        " / on () group_left sum without (instance) (b_total offset 5m) > bool 0 or absent(c)"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


def test_every_metric_of_the_rules_and_the_dashboard_is_registered() -> None:
    known = exposable(Metrics().registry)
    used = used_metric_names()
    assert len(used) >= 20
    assert used - known == set()
    prefixes = {name.split("_")[0] for name in used}
    assert prefixes == {"incluster", "controller"}


def test_the_dashboard_parses_and_every_panel_queries_the_datasource_variable() -> None:
    board = dashboard()
    assert board["uid"] == "incluster-ipam"
    graphs = [p for p in panels(board) if p["type"] != "row"]
    assert len(graphs) >= 20
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in graphs:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert metric_names(target["expr"]), f"{panel['title']}: {target['expr']}"
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource", "job"}
    assert len(dashboard_exprs(board)) == sum(len(p["targets"]) for p in graphs) + 1


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in markdown.splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            found.add(re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_each_alert_has_a_severity_a_summary_and_a_runbook_section(
    alert: dict[str, Any],
) -> None:
    labels, annotations = alert["labels"], alert["annotations"]
    assert isinstance(labels, dict)
    assert isinstance(annotations, dict)
    assert labels["severity"] in {"warning", "critical"}
    assert annotations["summary"]
    assert annotations["description"]
    url = annotations["runbook_url"]
    base = "https://github.com/incluster-ipam/incluster-ipam/blob/main/docs/operations.md#"
    assert url == base + str(alert["alert"]).lower()
    assert url.removeprefix(base) in _anchors(OPERATIONS.read_text())


def test_alerts_are_not_in_the_clusterctl_components() -> None:
    spec = importlib.util.spec_from_file_location("release", ROOT / "hack" / "release.py")
    assert spec is not None
    assert spec.loader is not None
    release = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(release)
    kinds = {obj["kind"] for obj in release.components("example.com/ipam:v0")}
    assert "Deployment" in kinds
    assert "PrometheusRule" not in kinds
