"""Metrics, dashboards and rules against real processes (issue 6, parts 1, 3 and 4).

Two real gateway processes (one healthy on a real Redis; one with Redis
unreachable and wrong Beeswax/StreamOne credentials, run with two workers) are
scraped every second by a real Prometheus (Debian's ``prometheus``) that loads
the shipped rules.
Test traffic reaches all four upstreams in two rounds with scrapes in between,
so every counter moves between two samples. Then:

- ``/metrics`` holds every contract family with exactly its label set, and
  ``promtool check metrics`` accepts it;
- every PromQL expression of the dashboards and of the rules evaluates without
  error through the HTTP API and returns at least one series with a finite
  value. A dashboard that shows nothing is a bug.
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.core.problem import CATALOGUE
from gateway.devrun import STANDIN_CREDENTIALS
from gateway.metrics import KNOWN_METHODS
from tests.harness import Gateway, free_port, gateway_env, launch_gateway, launch_standins
from tests.ops import expressions as ex
from tests.ops.promserver import PromServer, start_prometheus
from tests.ops.support import call, config_with, tool
from tests.ops.traffic import degraded_round, healthy_round, with_probe_policies

UPSTREAMS = {"bizzstream", "beeswax", "buzzstream", "streamone"}
# docs/contract.md §4: family -> (type, label names).
CONTRACT = {
    "gateway_requests": ("counter", {"upstream", "method", "status", "code"}),
    "gateway_request_duration_seconds": ("histogram", {"upstream", "method"}),
    "gateway_upstream_request_duration_seconds": ("histogram", {"upstream"}),
    "gateway_ratelimit_decisions": ("counter", {"upstream", "policy", "decision"}),
    "gateway_ratelimit_delay_seconds": ("histogram", {"upstream"}),
    "gateway_auth_renewals": ("counter", {"upstream", "result"}),
    "gateway_inflight_requests": ("gauge", {"upstream"}),
    "gateway_redis_errors": ("counter", set()),
}
# Added for operators (issue 6, part 1).
EXTRA = {
    "gateway_overhead_seconds": ("histogram", {"upstream"}),
    "gateway_upstream_throttled": ("counter", {"upstream"}),
    "gateway_upstream_cooldowns": ("counter", {"upstream"}),
    "gateway_ratelimit_fallback_active": ("gauge", set()),
    "gateway_circuit_open": ("gauge", {"dependency"}),
    "gateway_build_info": ("gauge", {"version"}),
    "gateway_circuit_state": ("gauge", {"upstream"}),  # issue 15
    "gateway_circuit_transitions": ("counter", {"upstream", "to"}),
    "gateway_config_reloads": ("counter", {"result"}),
    "gateway_upstream_retries": ("counter", {"upstream", "reason"}),
}
# The client library's standard process and Python families (issue 14).
PROCESS = {
    "process_cpu_seconds": ("counter", set()),
    "process_resident_memory_bytes": ("gauge", set()),
    "process_open_fds": ("gauge", set()),
    "process_max_fds": ("gauge", set()),
    "process_start_time_seconds": ("gauge", set()),
    "python_gc_collections": ("counter", {"generation"}),
    "python_gc_objects_collected": ("counter", {"generation"}),
    "python_info": ("gauge", {"implementation", "major", "minor", "patchlevel", "version"}),
}


@dataclass
class Stack:
    healthy: Gateway
    degraded: Gateway
    prom: PromServer | None
    traffic: dict[str, Any] = field(default_factory=dict)
    metrics_text: str = ""


def _prometheus_binary() -> str | None:
    return shutil.which("prometheus")


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with contextlib.ExitStack() as cleanup:
        # Stand-ins of its own: the shared ones carry other tests' login-rate windows.
        standins = launch_standins()
        cleanup.callback(standins.stop)
        config = config_with(tmp_path_factory.mktemp("live"), with_probe_policies)
        healthy = launch_gateway(gateway_env(standins, redis_url), config)
        cleanup.callback(healthy.stop)
        dead_redis = f"redis://127.0.0.1:{free_port()}/0"
        # Two workers (the supervisor answers /metrics for the pod): the families
        # exported only with workers > 1 (gateway_worker_restarts_total, behind
        # GatewayWorkersRestarting and a panel) exist, so their expressions are checked too.
        degraded = launch_gateway(
            gateway_env(
                standins, dead_redis, BEESWAX_PASSWORD="wrong", STREAMONE_PSK="wrong-psk",
                GATEWAY_WORKERS="2",
            )
        )  # fmt: skip
        cleanup.callback(degraded.stop)
        prom = None
        binary = _prometheus_binary()
        if binary is not None:
            targets = [g.url.removeprefix("http://") for g in (healthy, degraded)]
            prom = start_prometheus(binary, {"gateway": targets}, ex.RULE_FILES)
            cleanup.callback(prom.stop)
            prom.wait_scrapes("gateway", 1)
        s = Stack(healthy, degraded, prom)
        for round_no in (1, 2):
            s.traffic[f"healthy_{round_no}"] = healthy_round(healthy.url)
            s.traffic[f"degraded_{round_no}"] = degraded_round(degraded.url)
            if prom is not None:
                # Two scrapes after each round: every counter has moved between
                # two samples, and the 1 s rule evaluations have seen it.
                prom.wait_scrapes("gateway", 2)
        if prom is not None:
            prom.wait_scrapes("gateway", 1)
        s.metrics_text = call(healthy.url + "/metrics")[2].decode()
        yield s


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_has_every_family_with_its_labels(stack: Stack) -> None:
    families = _families(stack.metrics_text)
    for name, (kind, labels) in {**CONTRACT, **EXTRA, **PROCESS}.items():
        assert name in families, f"{name} missing; traffic was {stack.traffic}"
        family = families[name]
        assert family.type == kind, name
        assert family.samples, f"{name} has no series"
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample.labels)


def test_traffic_reached_all_four_upstreams_and_is_counted(stack: Stack) -> None:
    families = _families(stack.metrics_text)
    requests = families["gateway_requests"].samples
    counted = {s.labels["upstream"] for s in requests if s.name == "gateway_requests_total"}
    assert counted >= UPSTREAMS | {"none"}
    timed = {
        s.labels["upstream"]
        for s in families["gateway_upstream_request_duration_seconds"].samples
        if s.name.endswith("_count") and s.value > 0
    }
    assert timed == UPSTREAMS
    codes = {s.labels["code"] for s in requests}
    assert {"ok", "unknown_upstream", "rate_limited"} <= codes, codes


def _value(families: dict[str, Any], sample_name: str, **labels: str) -> float:
    family = families[sample_name.removesuffix("_total").removesuffix("_count")]
    return sum(
        s.value
        for s in family.samples
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_the_traffic_moved_every_series_it_drives(stack: Stack) -> None:
    """Primed series exist at 0 from start-up: presence alone proves nothing."""
    healthy = _families(stack.metrics_text)
    degraded = _families(call(stack.degraded.url + "/metrics")[2].decode())
    checks = {
        "decisions allowed": _value(
            healthy, "gateway_ratelimit_decisions_total", decision="allowed"
        ),
        "decisions delayed": _value(
            healthy, "gateway_ratelimit_decisions_total", decision="delayed"
        ),
        "decisions rejected": _value(
            healthy, "gateway_ratelimit_decisions_total", decision="rejected"
        ),
        "delay observed": _value(healthy, "gateway_ratelimit_delay_seconds_count"),
        "upstream 429 counted": _value(healthy, "gateway_upstream_throttled_total"),
        "cool-down put": _value(healthy, "gateway_upstream_cooldowns_total"),
        "logins ok": _value(healthy, "gateway_auth_renewals_total", result="ok"),
        "login errors": _value(degraded, "gateway_auth_renewals_total", result="error"),
        "redis errors": _value(degraded, "gateway_redis_errors_total"),
        "fallback active": _value(degraded, "gateway_ratelimit_fallback_active"),
    }
    assert all(v > 0 for v in checks.values()), checks


def test_metric_labels_stay_bounded(stack: Stack) -> None:
    """docs/contract.md §4: never a user id, raw path or request id as a label."""
    text = stack.metrics_text + call(stack.degraded.url + "/metrics")[2].decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            assert labels.get("upstream", "none") in UPSTREAMS | {"none"}, labels
            assert labels.get("method", "GET") in KNOWN_METHODS | {"OTHER"}, labels
            assert re.fullmatch(r"[1-5]\d\d", labels.get("status", "200")), labels
            assert labels.get("code", "ok") in set(CATALOGUE) | {"ok", "client_disconnected"}, (
                labels
            )
            assert not any("/" in v or "?" in v for k, v in labels.items() if k != "le"), labels


def test_promtool_check_metrics_accepts_the_exposition(stack: Stack) -> None:
    promtool = tool("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=stack.metrics_text, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _needs_prometheus(stack: Stack) -> PromServer:
    if stack.prom is None:
        pytest.skip("the prometheus binary is missing: run `make prometheus` (Debian package)")
    return stack.prom


def _check(prom: PromServer, expressions: list[ex.Expression]) -> list[str]:
    failures = []
    for item in expressions:
        data = prom.query(item.expr)
        if "error" in data:
            failures.append(f"{item.where}: error {data['error']}\n    {item.expr}")
            continue
        values = [float(r["value"][1]) for r in data["result"]]
        if not values:
            failures.append(f"{item.where}: no series\n    {item.expr}")
        elif not any(math.isfinite(v) for v in values):
            failures.append(f"{item.where}: only NaN/Inf {values}\n    {item.expr}")
    return failures


def test_every_dashboard_expression_returns_data(stack: Stack) -> None:
    prom = _needs_prometheus(stack)
    expressions = ex.dashboard_expressions()
    assert len(expressions) >= 30
    failures = _check(prom, expressions)
    assert not failures, "\n".join(failures) + f"\ntraffic: {stack.traffic}"


def test_every_rule_expression_evaluates_and_returns_data(stack: Stack) -> None:
    prom = _needs_prometheus(stack)
    items = [ex.Expression(f"record {r['record']}", r["expr"]) for r in ex.recording_rules()]
    items += [ex.Expression(f"records {r['record']}", r["record"]) for r in ex.recording_rules()]
    items += [ex.Expression(f"alert {r['alert']} (bool)", ex.as_bool(r["expr"]))
              for r in ex.alerting_rules()]  # fmt: skip
    failures = _check(prom, items)
    for rule in ex.alerting_rules():  # the expression as written must evaluate too
        data = prom.query(rule["expr"])
        if "error" in data:
            failures.append(f"alert {rule['alert']}: error {data['error']}")
    assert not failures, "\n".join(failures) + f"\ntraffic: {stack.traffic}"


def test_prometheus_evaluates_every_rule_healthily_and_scrapes_both_gateways(
    stack: Stack,
) -> None:
    prom = _needs_prometheus(stack)
    groups = prom.api("/api/v1/rules")["groups"]
    loaded = [r for g in groups for r in g["rules"]]
    assert len(loaded) == len(ex.rules())
    bad = [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
    assert not bad
    targets = prom.api("/api/v1/targets")["activeTargets"]
    assert len(targets) == 2
    assert all(t["health"] == "up" for t in targets), targets


def test_the_degraded_replica_shows_up_in_the_alerts_it_should(stack: Stack) -> None:
    """Auth failures and the Redis fallback are visible (the alerts' inputs are > 0)."""
    prom = _needs_prometheus(stack)
    instance = stack.degraded.url.removeprefix("http://")
    fallback = prom.query(f'gateway_ratelimit_fallback_active{{instance="{instance}"}}')
    assert [float(r["value"][1]) for r in fallback["result"]] == [1.0]
    errors = prom.query(f'gateway_redis_errors_total{{instance="{instance}"}}')
    assert float(errors["result"][0]["value"][1]) > 0
    auth = prom.query("upstream:gateway_upstream_auth_failed:rate5m > 0")
    assert {r["metric"]["upstream"] for r in auth["result"]} >= {"beeswax"}


def test_logs_are_json_lines_with_one_canonical_line_per_call_and_no_secret(
    stack: Stack,
) -> None:
    secret_keys = ("BIZZSTREAM_TOKEN", "BEESWAX_PASSWORD", "BUZZSTREAM_CONSUMER_SECRET")
    secrets = [STANDIN_CREDENTIALS[k] for k in secret_keys] + ["wrong-psk"]
    for gw in (stack.healthy, stack.degraded):
        text = gw.logs()
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked into the log"
        lines = gw.log_lines()
        assert len(lines) == len([t for t in text.splitlines() if t.strip()])  # all JSON
        requests = [line for line in lines if line.get("event") == "request"]
        assert requests and all(
            {"request_id", "upstream", "method", "path", "status", "code", "duration_ms",
             "ratelimit_delay_ms"} <= set(line) for line in requests
        )  # fmt: skip
        ids = [line["request_id"] for line in requests]
        assert len(ids) == len(set(ids))  # one line per call
        assert not any("?" in line["path"] for line in requests)
