"""Alert and recording rules: promtool checks and unit tests (issue 6 §4)."""

from __future__ import annotations

import re

from tests.ops import expressions as ex
from tests.ops.support import DEPLOY, ROOT, run, tool

PROM = DEPLOY / "prometheus"
REQUIRED_ALERTS = {
    "GatewayUpstreamErrorRatioHigh",  # high error ratio per upstream
    "GatewayUpstreamAuthFailing",  # upstream auth failures
    "GatewayRateLimitRefusalsSustained",  # sustained rate-limit refusals
    "GatewayRedisFallbackActive",  # Redis fallback active
    "GatewayOverheadP99High",  # p99 overhead high
}


def test_promtool_check_rules() -> None:
    result = run([tool("promtool"), "check", "rules", *map(str, ex.RULE_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    tests = sorted((PROM / "tests").glob("*.test.yml"))
    assert tests
    result = run([tool("promtool"), "test", "rules", *map(str, tests)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_config_of_the_example_prometheus() -> None:
    result = run([tool("promtool"), "check", "config", str(PROM / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_required_alerts_exist_and_each_is_unit_tested() -> None:
    alerts = {r["alert"] for r in ex.alerting_rules()}
    assert alerts >= REQUIRED_ALERTS
    tested = set()
    for path in (PROM / "tests").glob("*.test.yml"):
        tested |= set(re.findall(r"alertname: (\w+)", path.read_text()))
    assert alerts == tested, alerts ^ tested


def test_every_alert_carries_its_runbook_and_the_docs_have_it() -> None:
    docs = (ROOT / "docs" / "operations.md").read_text()
    headings = {m.lower() for m in re.findall(r"^#+ +(\w+)\s*$", docs, re.MULTILINE)}
    for rule in ex.alerting_rules():
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook", "docs"} <= set(annotations), rule["alert"]
        assert len(annotations["runbook"]) > 80, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule.get("for"), rule["alert"]
        assert annotations["docs"] == f"docs/operations.md#{rule['alert'].lower()}"
        assert rule["alert"].lower() in headings, f"docs/operations.md lacks {rule['alert']}"


def test_as_bool_turns_every_threshold_into_a_bool_comparison() -> None:
    assert ex.as_bool("(a > 0.05) and on (x) (b > 0.1)") == (
        "(a > bool 0.05) and on (x) (b > bool 0.1)"
    )
    assert ex.as_bool('up{job=~".*gateway.*"} == 0') == 'up{job=~".*gateway.*"} == bool 0'
    for rule in ex.alerting_rules():
        assert " bool " in ex.as_bool(rule["expr"]), rule["alert"]
