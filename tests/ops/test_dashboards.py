"""The Grafana dashboard and its provisioning, checked without Grafana (issue 6, part 3).

The live test (test_observability_live.py) evaluates every expression in a real
Prometheus; these check the JSON itself: generated from its script, complete
(every topic the issue lists has a panel), and readable (titles, descriptions,
units, no overlapping panels, only known metrics).
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from gateway.metrics import create_metrics
from gateway.server.pod_metrics import PodCollector
from gateway.server.workers import write_status
from tests.ops import expressions as ex
from tests.ops.support import DEPLOY

GRAFANA = DEPLOY / "grafana"


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((GRAFANA / "dashboards" / "gateway.json").read_text()))


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def exported_names() -> set[str]:
    """Every sample name the gateway can export (histogram parts included)."""
    registry = CollectorRegistry()
    create_metrics(registry)
    # With workers > 1 the supervisor's collector adds the pod's families.
    with tempfile.TemporaryDirectory() as pod_dir:
        status = {"workers": 2, "ready": 2, "restarts": 0, "supervisor": os.getpid(),
                  "pids": [], "reaped_cpu": 0.0}  # fmt: skip
        write_status(pod_dir, status)
        registry.register(PodCollector(pod_dir))
        families = list(registry.collect())
    names = set()
    for family in families:
        names.add(family.name)
        for suffix in ("_total", "_bucket", "_sum", "_count", "_created", "_info"):
            names.add(family.name + suffix)
    return names


def test_committed_json_is_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("gen", GRAFANA / "generate_dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (GRAFANA / "dashboards" / "gateway.json").read_text()
    assert module.render() == committed, "run: python deploy/grafana/generate_dashboard.py"


def test_every_topic_of_the_issue_has_a_panel() -> None:
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in _panels()}

    def has(*needles: str) -> bool:
        return any(all(n in e for n in needles) for e in exprs.values())

    assert has("sum by (upstream) (rate(gateway_requests_total")  # traffic per upstream
    assert has("sum by (code)", 'code!="ok"', "group_left")  # error ratio by code
    for metric in ("gateway_overhead_seconds", "gateway_upstream_request_duration_seconds"):
        for q in ("0.5", "0.95", "0.99"):
            assert has(f"histogram_quantile({q}", metric), (metric, q)
    assert has("gateway_ratelimit_decisions_total", "decision")
    assert has("histogram_quantile(0.99", "gateway_ratelimit_delay_seconds")
    assert has("gateway_upstream_throttled_total", "gateway_upstream_cooldowns_total")
    assert has("gateway_auth_renewals_total", "result")
    assert has("gateway_redis_errors_total")
    assert has("gateway_ratelimit_fallback_active")
    assert has("gateway_inflight_requests")
    assert has("gateway_circuit_open")
    assert has("gateway_build_info")
    # The Process row (issue 14): CPU, memory, file descriptors, GC.
    assert has("rate(process_cpu_seconds_total")
    assert has("process_resident_memory_bytes")
    assert has("process_open_fds", "process_max_fds")
    assert has("python_gc_collections_total", "generation")
    assert has("increase(gateway_worker_restarts_total")  # workers > 1: restarts
    rows = [p["title"] for p in _dashboard()["panels"] if p["type"] == "row"]
    assert "Process" in rows


def test_panels_are_readable_and_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    ids = set()
    for panel in _dashboard()["panels"]:
        assert panel["id"] not in ids
        ids.add(panel["id"])
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                 for y in range(pos["y"], pos["y"] + pos["h"])}  # fmt: skip
        assert not cells & taken, panel["title"]
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["title"] and len(panel["description"]) > 30, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        for target in panel["targets"]:
            assert "or vector(0)" not in target["expr"]
            assert 'job=~"$job"' in target["expr"], (panel["title"], target["expr"])


def test_dashboards_and_rules_only_read_metrics_the_gateway_exports() -> None:
    known = exported_names() | {r["record"] for r in ex.recording_rules()} | {"up"}
    used = [
        *((e.where, e.expr) for e in ex.dashboard_expressions()),
        *((r.get("alert") or r["record"], r["expr"]) for r in ex.rules()),
    ]
    for where, expr in used:
        unknown = ex.metric_names(expr) - known
        assert not unknown, (where, unknown)


def test_template_variables_are_all_substituted_by_the_live_test() -> None:
    dashboard = _dashboard()
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert names == {"datasource", "job", "upstream"}
    for item in ex.dashboard_expressions():  # substitute() raises on an unknown variable
        assert "$" not in item.expr


def test_provisioning_points_at_the_dashboards_folder() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert ds["apiVersion"] == 1
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"].startswith("http")
    dash = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "gateway.yaml").read_text())
    (provider,) = dash["providers"]
    assert provider["type"] == "file"
    # The compose file mounts deploy/grafana/dashboards at this path.
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    target = provider["options"]["path"]
    assert any(m.endswith(f":{target}:ro") and "grafana/dashboards" in m for m in mounts)


def test_every_dashboard_file_is_valid_json_with_a_uid() -> None:
    uids = set()
    for path in ex.DASHBOARDS:
        data = json.loads(Path(path).read_text())
        assert data["uid"] not in uids
        uids.add(data["uid"])
        assert data["schemaVersion"] >= 36
