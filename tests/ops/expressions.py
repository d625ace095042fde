"""Every PromQL expression the project ships: dashboard targets and rule expressions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.ops.support import DEPLOY

DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))

# Grafana's variables, as a test evaluates them: every job and upstream, and
# windows long enough to hold several 1 s scrapes.
VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "${job}": ".*",
    "$job": ".*",
    "${upstream}": ".*",
    "$upstream": ".*",
}
_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)\s*(?=[-+]?\d)")
_METRIC = re.compile(r"\b(gateway_[a-z_]+|[a-z_]+:[a-z0-9_]+:[a-z0-9_]+|up)\b(?!\s*\()")


@dataclass(frozen=True)
class Expression:
    where: str  # "gateway.json: panel 'Requests per second' A" / "rule GatewayX"
    expr: str


def substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    if "$" in expr:
        raise ValueError(f"unknown Grafana variable in {expr!r}")
    return expr


def as_bool(expr: str) -> str:
    """The alert expression with every comparison to a number made a ``bool`` one.

    An alert's expression returns series only while it fires; with ``bool`` it
    returns 0/1 for every series it looks at, so a test can check that the
    series exist under normal traffic, not that the alert fires.
    """
    return _COMPARISON.sub(lambda m: f"{m.group(1)} bool ", expr)


def dashboard_expressions() -> list[Expression]:
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                where = f"{path.name}: panel {panel['title']!r} {target['refId']}"
                found.append(Expression(where, substitute(target["expr"])))
    return found


def rules() -> list[dict[str, str]]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.extend(group["rules"])
    return out


def recording_rules() -> list[dict[str, str]]:
    return [r for r in rules() if "record" in r]


def alerting_rules() -> list[dict[str, str]]:
    return [r for r in rules() if "alert" in r]


def metric_names(expr: str) -> set[str]:
    """Metric and recording-rule names an expression reads (functions excluded)."""
    words = set(_METRIC.findall(re.sub(r'"[^"]*"', '""', expr)))
    return {w for w in words if w not in {"by", "on", "le"}}


def panel_count(path: Path) -> int:
    return sum(1 for p in json.loads(path.read_text())["panels"] if p["type"] != "row")
