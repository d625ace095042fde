"""Writes ``dashboards/gateway.json``, the Grafana dashboard of the gateway sidecar.

The JSON is generated so that every panel follows the same rules; edit this
file, then run ``python deploy/grafana/generate_dashboard.py`` (a test checks
that the committed JSON is what this script writes).

Rules the panels follow:
- each panel answers one question, written in its title, and its description
  says how to read it and what to do about it;
- every expression filters on ``$job`` and (where the metric has it) on
  ``$upstream``, and uses ``$__rate_interval`` so it works at any scrape interval;
- no ``or vector(0)`` padding: the gateway creates its labelled series at zero at
  start-up, and a panel whose metric can legitimately be absent (no errors
  yet) says so with ``noValue``;
- units are set on every panel (seconds, req/s, percent).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards" / "gateway.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"
J = 'job=~"$job"'
JU = 'job=~"$job", upstream=~"$upstream"'


def quantiles(metric: str, by: str = "") -> list[tuple[str, str]]:
    group = f"le{', ' + by if by else ''}"
    prefix = f"{{{{{by}}}}} " if by else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{JU}}}[{RI}])))",
            f"{prefix}p{int(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


class Layout:
    """Places panels left to right in rows of 24 columns."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.y = 0
        self.x = 0
        self.row_height = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def _newline(self) -> None:
        self.y += self.row_height
        self.x = 0
        self.row_height = 0

    def panel(
        self,
        kind: str,
        title: str,
        description: str,
        targets: list[tuple[str, str]],
        *,
        unit: str,
        w: int = 12,
        h: int = 8,
        no_value: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        if self.x + w > 24:
            self._newline()
        defaults: dict[str, Any] = {"unit": unit}
        if no_value is not None:
            defaults["noValue"] = no_value
        panel: dict[str, Any] = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "targets": [
                {
                    "refId": chr(ord("A") + i),
                    "datasource": DS,
                    "expr": expr,
                    "legendFormat": legend,
                    **({"instant": True, "format": "table"} if kind == "table" else {}),
                }
                for i, (expr, legend) in enumerate(targets)
            ],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {},
        }
        if kind == "timeseries":
            defaults["custom"] = {"fillOpacity": 10, "lineWidth": 1, "showPoints": "never"}
            panel["options"] = {
                "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        for key, value in (extra or {}).items():
            if key == "defaults":
                defaults.update(value)
            else:
                panel[key] = value
        self.panels.append(panel)
        self.x += w
        self.row_height = max(self.row_height, h)


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {
        "thresholds": {
            "mode": "absolute",
            "steps": [{"value": v, "color": c} for v, c in steps],
        }
    }


def build() -> dict[str, Any]:
    g = Layout()
    total = f"sum(rate(gateway_requests_total{{{JU}}}[{RI}]))"

    g.row("At a glance")
    g.panel(
        "stat", "Requests per second",
        "Calls answered by the gateway for the selected upstreams, every outcome included.",
        [(total, "req/s")], unit="reqps", w=4, h=5,
    )  # fmt: skip
    g.panel(
        "stat", "5xx share",
        "Share of calls answered 5xx (upstream errors, timeouts, unavailable, auth failures, "
        "gateway faults). Above 5% for 5 minutes pages (GatewayUpstreamErrorRatioHigh).",
        [(f'sum(rate(gateway_requests_total{{{JU}, status=~"5.."}}[{RI}])) / {total}', "5xx")],
        unit="percentunit", w=4, h=5, no_value="0 (no 5xx)",
        extra={"defaults": thresholds((None, "green"), (0.01, "orange"), (0.05, "red"))},
    )  # fmt: skip
    g.panel(
        "stat", "p99 gateway overhead",
        "The gateway's own time per call (total minus upstream time minus rate-limit wait), "
        "99th percentile. Normally well under 5 ms; GatewayOverheadP99High fires at 25 ms.",
        [(f"histogram_quantile(0.99, sum by (le) "
          f"(rate(gateway_overhead_seconds_bucket{{{JU}}}[{RI}])))", "p99")],
        unit="s", w=4, h=5,
        extra={"defaults": thresholds((None, "green"), (0.005, "orange"), (0.025, "red"))},
    )  # fmt: skip
    g.panel(
        "stat", "In flight",
        "Calls inside the gateway right now, rate-limit waits included.",
        [(f"sum(gateway_inflight_requests{{{JU}}})", "in flight")], unit="short", w=4, h=5,
    )  # fmt: skip
    g.panel(
        "stat", "Replicas on Redis fallback",
        "Replicas whose limiter runs on its local fallback because Redis fails: quotas are "
        "then per replica, not shared. 0 is healthy.",
        [(f"sum(gateway_ratelimit_fallback_active{{{J}}})", "on fallback")],
        unit="short", w=4, h=5,
        extra={"defaults": thresholds((None, "green"), (1, "red"))},
    )  # fmt: skip
    g.panel(
        "stat", "Replicas per version",
        "Running gateway replicas, by version (gateway_build_info). Two versions side by "
        "side means a rollout is in progress.",
        [(f"count by (version) (gateway_build_info{{{J}}})", "{{version}}")],
        unit="short", w=4, h=5,
    )  # fmt: skip

    g.row("Traffic and errors")
    g.panel(
        "timeseries", "Requests per second, per upstream",
        "Every call the gateway answered, by upstream. `none` is a call to an unknown "
        "upstream or a malformed request that never reached one.",
        [(f"sum by (upstream) (rate(gateway_requests_total{{{JU}}}[{RI}]))", "{{upstream}}")],
        unit="reqps",
    )  # fmt: skip
    g.panel(
        "timeseries", "Responses per second, by HTTP status",
        "The status the gateway returned to callers.",
        [(f"sum by (status) (rate(gateway_requests_total{{{JU}}}[{RI}]))", "{{status}}")],
        unit="reqps",
    )  # fmt: skip
    g.panel(
        "timeseries", "Error ratio, by problem code",
        "Share of all calls that ended in each problem code (docs/contract.md §3). "
        "`rate_limited` is quota, `upstream_*` is the upstream, `invalid_request` and "
        "`unknown_upstream` are callers' mistakes.",
        [(f'sum by (code) (rate(gateway_requests_total{{{JU}, code!="ok"}}[{RI}])) '
          f"/ ignoring (code) group_left {total}", "{{code}}")],
        unit="percentunit", no_value="0 (no errors)",
    )  # fmt: skip
    g.panel(
        "timeseries", "5xx ratio, per upstream",
        "Share of each upstream's calls answered 5xx. This is what "
        "GatewayUpstreamErrorRatioHigh watches (threshold 5%).",
        [(f'sum by (upstream) (rate(gateway_requests_total{{{JU}, status=~"5.."}}[{RI}])) '
          f"/ sum by (upstream) (rate(gateway_requests_total{{{JU}}}[{RI}]))", "{{upstream}}")],
        unit="percentunit", no_value="0 (no 5xx)",
        extra={"defaults": thresholds((None, "green"), (0.05, "red"))},
    )  # fmt: skip
    g.panel(
        "table", "Errors in the selected range, by upstream and code",
        "How many calls ended in each problem code over the dashboard's time range.",
        [(f'sum by (upstream, code) (increase(gateway_requests_total{{{JU}, code!="ok"}}'
          f"[$__range]))", "")],
        unit="short", w=24, h=7, no_value="no errors",
    )  # fmt: skip

    g.row("Latency: upstream time versus gateway overhead")
    g.panel(
        "timeseries", "End-to-end latency (p50, p95, p99)",
        "From request received to response headers sent, rate-limit waits included.",
        quantiles("gateway_request_duration_seconds"), unit="s", w=8,
    )  # fmt: skip
    g.panel(
        "timeseries", "Upstream time (p50, p95, p99)",
        "Each HTTP exchange with an upstream, logins and renewals included. Slow here and "
        "not in overhead: the upstream is slow.",
        quantiles("gateway_upstream_request_duration_seconds"), unit="s", w=8,
    )  # fmt: skip
    g.panel(
        "timeseries", "Gateway overhead (p50, p95, p99)",
        "The gateway's own time per call: total minus upstream time minus rate-limit wait. "
        "Slow here: the gateway host is saturated (CPU, event loop) or Redis is slow.",
        quantiles("gateway_overhead_seconds"), unit="s", w=8,
    )  # fmt: skip
    g.panel(
        "timeseries", "p99 per upstream: upstream time and gateway overhead",
        "Both halves of the latency, per upstream, on one axis.",
        [(f"histogram_quantile(0.99, sum by (le, upstream) "
          f"(rate(gateway_upstream_request_duration_seconds_bucket{{{JU}}}[{RI}])))",
          "{{upstream}} upstream"),
         (f"histogram_quantile(0.99, sum by (le, upstream) "
          f"(rate(gateway_overhead_seconds_bucket{{{JU}}}[{RI}])))", "{{upstream}} overhead")],
        unit="s", w=24,
    )  # fmt: skip

    g.row("Rate limits")
    g.panel(
        "timeseries", "Rate-limit decisions per second",
        "Per upstream, policy and decision: `allowed` went at once, `delayed` waited for "
        "its slot, `rejected` got a 429 `rate_limited` with source `gateway`.",
        [(f"sum by (upstream, policy, decision) "
          f"(rate(gateway_ratelimit_decisions_total{{{JU}}}[{RI}]))",
          "{{upstream}}/{{policy}} {{decision}}")],
        unit="reqps", w=8,
    )  # fmt: skip
    g.panel(
        "timeseries", "Refused share, per policy",
        "Share of each policy's decisions that refused the call. Sustained above 5%: the "
        "quota is too small for the traffic (GatewayRateLimitRefusalsSustained).",
        [(f'sum by (upstream, policy) (rate(gateway_ratelimit_decisions_total{{{JU}, '
          f'decision="rejected"}}[{RI}])) / sum by (upstream, policy) '
          f"(rate(gateway_ratelimit_decisions_total{{{JU}}}[{RI}]))", "{{upstream}}/{{policy}}")],
        unit="percentunit", w=8,
    )  # fmt: skip
    g.panel(
        "timeseries", "Rate-limit wait (p50, p95, p99)",
        "How long delayed calls waited for their slot (policies with on_exceed: delay).",
        quantiles("gateway_ratelimit_delay_seconds"), unit="s", w=8,
    )  # fmt: skip

    g.row("Upstream pushback and upstream auth")
    g.panel(
        "timeseries", "Upstream 429s and cool-downs per second",
        "429s (StreamOne status 8) the upstreams answered, and the shared cool-downs the "
        "gateway then put on the account. Any at all: the gateway's own policy is looser "
        "than the upstream's real quota.",
        [(f"sum by (upstream) (rate(gateway_upstream_throttled_total{{{JU}}}[{RI}]))",
          "{{upstream}} 429s"),
         (f"sum by (upstream) (rate(gateway_upstream_cooldowns_total{{{JU}}}[{RI}]))",
          "{{upstream}} cool-downs")],
        unit="reqps",
    )  # fmt: skip
    g.panel(
        "timeseries", "Upstream auth renewals per second",
        "Logins, token renewals and session renewals, by result. A steady trickle of `ok` "
        "is normal (sessions expire); any `error` means the upstream refuses the "
        "gateway's credentials.",
        [(f"sum by (upstream, result) (rate(gateway_auth_renewals_total{{{JU}}}[{RI}]))",
          "{{upstream}} {{result}}")],
        unit="reqps",
    )  # fmt: skip
    g.panel(
        "timeseries", "Calls failed for upstream auth",
        "Calls answered 502 `upstream_auth_failed`: the upstream rejected the credentials "
        "even after one renewal. Check the upstream's Secret (GatewayUpstreamAuthFailing).",
        [(f'sum by (upstream) (rate(gateway_requests_total{{{JU}, '
          f'code="upstream_auth_failed"}}[{RI}]))', "{{upstream}}")],
        unit="reqps", w=24, h=6, no_value="0 (none)",
    )  # fmt: skip
    g.panel(
        "state-timeline", "Upstream circuit breakers",
        "Per upstream with `circuit:` configured, worst replica shown: closed (calls go "
        "through), open (calls fail fast with 503 upstream_unavailable, nothing is sent) or "
        "half-open (a few probe calls test the upstream). Open for long: the upstream is "
        "down or failing (GatewayUpstreamCircuitOpen).",
        [(f"max by (upstream) (gateway_circuit_state{{{JU}}})", "{{upstream}}")],
        unit="short", w=12, h=6, no_value="no breaker configured",
        extra={"defaults": {"mappings": [
            {"type": "value", "options": {"0": {"text": "closed", "color": "green"},
                                          "1": {"text": "open", "color": "red"},
                                          "2": {"text": "half-open", "color": "orange"}}}]}},
    )  # fmt: skip
    g.panel(
        "timeseries", "Circuit transitions per minute",
        "State changes of the upstream breakers, by the state entered, all replicas. "
        "Open, half-open, open again...: the upstream is still failing its probes.",
        [(f"sum by (upstream, to) (rate(gateway_circuit_transitions_total{{{JU}}}[{RI}])) * 60",
          "{{upstream}} → {{to}}")],
        unit="short", w=12, h=6, no_value="no breaker configured",
    )  # fmt: skip

    g.row("Redis and saturation")
    g.panel(
        "timeseries", "Redis errors per second, per replica",
        "Redis commands that failed or timed out. The limiter then follows redis.on_error "
        "(local fallback, open or closed).",
        [(f"sum by (instance) (rate(gateway_redis_errors_total{{{J}}}[{RI}]))", "{{instance}}")],
        unit="ops", w=6,
    )  # fmt: skip
    g.panel(
        "state-timeline", "Limiter backend, per replica",
        "Redis (shared quotas) or fallback (per-replica quotas) over time.",
        [(f"max by (instance) (gateway_ratelimit_fallback_active{{{J}}})", "{{instance}}")],
        unit="short", w=6,
        extra={"defaults": {"mappings": [
            {"type": "value", "options": {"0": {"text": "Redis", "color": "green"},
                                          "1": {"text": "fallback", "color": "red"}}}]}},
    )  # fmt: skip
    g.panel(
        "state-timeline", "Circuit breakers",
        "Per dependency (`redis`, ...): closed (calls go through) or open (calls skip it "
        "until a probe succeeds), worst replica shown.",
        [(f"max by (dependency) (gateway_circuit_open{{{J}}})", "{{dependency}}")],
        unit="short", w=6,
        extra={"defaults": {"mappings": [
            {"type": "value", "options": {"0": {"text": "closed", "color": "green"},
                                          "1": {"text": "open", "color": "red"}}}]}},
    )  # fmt: skip
    g.panel(
        "timeseries", "In-flight calls, per upstream",
        "Calls inside the gateway, rate-limit waits included. Growing without more "
        "traffic: an upstream is slowing down or a quota is too tight.",
        [(f"sum by (upstream) (gateway_inflight_requests{{{JU}}})", "{{upstream}}")],
        unit="short", w=6,
    )  # fmt: skip

    g.row("Process")
    g.panel(
        "timeseries", "CPU, per replica",
        "CPU seconds per second of each gateway process (1 = one full core). The "
        "gateway runs one process per pod: near the container's CPU limit, overhead "
        "grows (GatewayOverheadP99High); raise the limit or add replicas.",
        [(f"sum by (instance) (rate(process_cpu_seconds_total{{{J}}}[{RI}]))",
          "{{instance}}")],
        unit="percentunit", w=6,
    )  # fmt: skip
    g.panel(
        "timeseries", "Resident memory, per replica",
        "Resident set size of each gateway process. It should level off after warm-up; "
        "steady growth under steady traffic is a leak worth reporting. Keep it well "
        "under the container's memory limit.",
        [(f"sum by (instance) (process_resident_memory_bytes{{{J}}})", "{{instance}}")],
        unit="bytes", w=6,
    )  # fmt: skip
    g.panel(
        "timeseries", "Open file descriptors, share of the limit",
        "Sockets and files held open (callers, upstream pools, Redis) against the "
        "process limit. Near 100%, new connections fail: raise the limit or lower "
        "pool_size.",
        [(f"max by (instance) (process_open_fds{{{J}}} / process_max_fds{{{J}}})",
          "{{instance}}")],
        unit="percentunit", w=6,
    )  # fmt: skip
    g.panel(
        "timeseries", "Python GC collections per second, by generation",
        "Garbage-collector runs of the interpreter. A high rate of generation 2 "
        "collections with rising memory points at many long-lived objects.",
        [(f"sum by (generation) (rate(python_gc_collections_total{{{J}}}[{RI}]))",
          "gen {{generation}}")],
        unit="ops", w=6,
    )  # fmt: skip
    g.panel(
        "timeseries", "Worker restarts, per replica",
        "Worker processes the supervisor restarted after they died (server.workers > 1 "
        "only; empty with one worker). Each death is a worker_died log line with its exit "
        "code; several in 15 minutes fire GatewayWorkersRestarting.",
        [(f"sum by (instance) (increase(gateway_worker_restarts_total{{{J}}}[{RI}]))",
          "{{instance}}")],
        unit="short", w=24, h=6, no_value="0 (one worker, or none died)",
    )  # fmt: skip

    return {
        "title": "API gateway sidecar",
        "uid": "gateway-sidecar",
        "description": "Traffic, errors, latency split, quotas, upstream auth and Redis of "
        "the API gateway sidecar, and its process. Metrics: docs/operations.md; alerts in "
        "deploy/prometheus/rules.",
        "tags": ["gateway", "api"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": variables()},
        "panels": g.panels,
    }


def variables() -> list[dict[str, Any]]:
    def query_var(name: str, label: str, query: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DS,
            "query": {"query": query, "refId": f"{name}-query"},
            "definition": query,
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
        }

    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
        },
        query_var("job", "Job", "label_values(gateway_build_info, job)"),
        query_var(
            "upstream", "Upstream", 'label_values(gateway_requests_total{job=~"$job"}, upstream)'
        ),
    ]


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT}")
