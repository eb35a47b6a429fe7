"""The chart's monitoring: alert rules and dashboard queries that parse as PromQL (with the
Prometheus project's grammar, through promql-parser), rules shaped as a PrometheusRule
wants them, and each part rendered only when asked for."""

from __future__ import annotations

import promql_parser
import pytest

from tests.deploy.test_manifests import render
from tests.support.monitoring import dashboard_queries, expressions, rules

WANTED_ALERTS = {"OmnihooksConsumerLag", "OmnihooksDeadLettersGrowing",
                 "OmnihooksEndpointBreakerOpen", "OmnihooksWorkerDown"}  # fmt: skip


@pytest.mark.parametrize("expr", expressions())
def test_every_rule_and_dashboard_query_parses_as_promql(expr: str) -> None:
    promql_parser.parse(expr)


def test_a_broken_expression_is_caught() -> None:
    with pytest.raises(Exception, match="parenthesis"):
        promql_parser.parse("sum(rate(omnihooks_delivered_total[5m])")


def test_the_rules_are_the_alerts_asked_for_each_with_a_severity_and_a_summary() -> None:
    found = {str(rule["alert"]): rule for rule in rules()}
    assert set(found) == WANTED_ALERTS
    for rule in found.values():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert rule["labels"]["severity"] in ("warning", "critical")  # type: ignore[index]
        assert rule["annotations"]["summary"]  # type: ignore[index]
    assert len(dashboard_queries()) >= 10


def test_monitoring_renders_only_when_enabled() -> None:
    kinds = {d["kind"] for d in render()}
    assert not kinds & {"PrometheusRule", "PodMonitor"}
    docs = render("monitoring.rules.enabled=true", "monitoring.podMonitor.enabled=true",
                  "monitoring.dashboard.enabled=true", "monitoring.labels.release=kps")  # fmt: skip
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kps"
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert {a["alert"] for a in alerts} == WANTED_ALERTS
    assert "{{ $labels.topic }}" in alerts[0]["annotations"]["summary"]  # Prometheus's, untouched
    monitor = next(d for d in docs if d["kind"] == "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "web"
    dashboard = next(
        d for d in docs if d["kind"] == "ConfigMap" and "omnihooks.json" in d.get("data", {})
    )
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert '"uid": "omnihooks"' in dashboard["data"]["omnihooks.json"]
