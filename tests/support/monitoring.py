"""The PromQL the chart ships: its alert rules and its dashboard's queries, and the worker
metrics they name."""

from __future__ import annotations

import json
import re

import yaml

from tests.support.files import REPO

FILES = REPO / "deploy" / "helm" / "omnihooks" / "files"
# Prometheus's own series, not a worker's
NOT_EXPORTED = {"up"}


def rules() -> list[dict[str, object]]:
    data = yaml.safe_load((FILES / "rules.yaml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    dashboard = json.loads((FILES / "dashboard.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def expressions() -> list[str]:
    return [str(rule["expr"]) for rule in rules()] + dashboard_queries()


def series_named() -> set[str]:
    """Every series name the expressions read (`omnihooks_x_total`, `omnihooks_y_bucket`...)."""
    names: set[str] = set()
    for expr in expressions():
        names.update(re.findall(r"\b(omnihooks_[a-z_]+)\b", expr))
    return names
