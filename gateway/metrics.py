"""Every Prometheus metric the gateway exports, declared once.

The families in docs/contract.md §4 are all here, plus a few that operators need
(overhead, cool-downs, circuit state, build info) and the client library's
standard ``process_*`` (CPU seconds, resident memory, open file descriptors)
and ``python_*`` (GC, interpreter version) families. Metrics are registered on
an injected :class:`CollectorRegistry` so that tests can build many apps.

Labels only take values from bounded sets: upstream names from config, HTTP
methods, status codes, problem codes, policy names from config. Never a user id,
a raw path or a request id.

With ``server.workers`` > 1 every worker writes its values to files in a
directory shared by the pod (prometheus-client's multiprocess mode,
``gateway/server/pod_metrics.py``); ``/metrics`` sums counters and histograms
over the workers, and each gauge says how it combines (``multiprocess_mode``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from gateway import __version__

# Gateway overhead is sub-millisecond; upstream calls and rate-limit delays run
# to tens of seconds.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
DELAY_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

DECISIONS = ("allowed", "delayed", "rejected")
# gateway_upstream_failures_total{reason}: why an exchange with an upstream failed.
UPSTREAM_FAILURES = (
    "pool_exhausted",  # no free connection within timeouts.pool
    "connect_failed",  # refused, unreachable, DNS
    "connect_timeout",  # no connection within timeouts.connect
    "head_timeout",  # no reply head within timeouts.head
    "idle_timeout",  # no reply body data for timeouts.idle
    "disconnected",  # the upstream closed the connection before or during its reply
    "bad_reply",  # a reply that is not valid HTTP
)
RENEWAL_RESULTS = ("ok", "error", "joined")  # joined: adopted another replica's login
RELOAD_RESULTS = ("ok", "refused")

# gateway_ratelimit_fallback_decisions_total{reason}: why a decision was made without Redis.
FALLBACK_REASONS = ("circuit_open", "error")  # error: the round trip failed or timed out
# gateway_load_shed_total{reason}: which capacity bound refused the work.
SHED_REASONS = ("connections", "inflight", "buffered_bytes")

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """Bound the ``method`` label: unknown verbs collapse to ``OTHER``."""
    return method if method in KNOWN_METHODS else "OTHER"


@functools.lru_cache(maxsize=8192)
def child(metric: Any, *labels: str | int) -> Any:
    """``metric.labels(*labels)``, resolved once per label values and cached.

    ``labels()`` validates, converts and locks on every call (~1 µs, several
    per request); a cached child is a C-level dict hit (~0.1 µs). Every label
    takes its values from a bounded set (above), so the cache stays small.
    A non-string value (a status code) is a key of its own; the child is the
    same one prometheus-client returns for its ``str()``.
    """
    return metric.labels(*labels)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    request_duration: Histogram
    upstream_duration: Histogram
    overhead: Histogram
    ratelimit_decisions: Counter
    ratelimit_delay: Histogram
    ratelimit_shadow: Counter
    auth_renewals: Counter
    inflight: Gauge
    redis_errors: Counter
    upstream_throttled: Counter
    cooldowns: Counter
    limiter_backend: Gauge
    circuit_open: Gauge
    upstream_failures: Counter
    circuit_state: Gauge
    circuit_transitions: Counter
    config_reloads: Counter
    retries: Counter
    load_shed: Counter
    fallback_decisions: Counter
    fallback_seconds: Counter
    circuit_openings: Counter
    oauth_replacements: Counter
    build_info: Info


def create_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    # No `*_created` series: they double the series count of every counter and
    # histogram, and Prometheus does not need them to compute rate() correctly.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    reg = registry if registry is not None else CollectorRegistry()
    # What operators expect of any Python service: process_cpu_seconds_total,
    # process_resident_memory_bytes, process_open_fds, python_gc_*, python_info.
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    build = Info("gateway_build", "Gateway version.", registry=reg)
    build.info({"version": __version__})
    return Metrics(
        registry=reg,
        requests=Counter(
            "gateway_requests_total",
            "Requests answered by the gateway.",
            ["upstream", "method", "status", "code"],
            registry=reg,
        ),
        request_duration=Histogram(
            "gateway_request_duration_seconds",
            "Time from request received to response headers sent, rate-limit delay included.",
            ["upstream", "method"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        ),
        upstream_duration=Histogram(
            "gateway_upstream_request_duration_seconds",
            "Time of each HTTP exchange with an upstream (logins and renewals included).",
            ["upstream"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        ),
        overhead=Histogram(
            "gateway_overhead_seconds",
            "Gateway's own time per request: total minus upstream time minus rate-limit delay.",
            ["upstream"],
            buckets=OVERHEAD_BUCKETS,
            registry=reg,
        ),
        ratelimit_decisions=Counter(
            "gateway_ratelimit_decisions_total",
            "Rate-limit decisions per policy.",
            ["upstream", "policy", "decision"],
            registry=reg,
        ),
        ratelimit_delay=Histogram(
            "gateway_ratelimit_delay_seconds",
            "Time a call waited for its rate-limit slot.",
            ["upstream"],
            buckets=DELAY_BUCKETS,
            registry=reg,
        ),
        ratelimit_shadow=Counter(
            "gateway_ratelimit_shadow_decisions_total",
            "What shadow (not enforced) policies would have decided: a rollout aid.",
            ["upstream", "policy", "decision"],
            registry=reg,
        ),
        auth_renewals=Counter(
            "gateway_auth_renewals_total",
            "Upstream logins, token renewals and session renewals.",
            ["upstream", "result"],
            registry=reg,
        ),
        inflight=Gauge(
            "gateway_inflight_requests",
            "Requests being handled, rate-limit waits included.",
            ["upstream"],
            multiprocess_mode="livesum",
            registry=reg,
        ),
        redis_errors=Counter(
            "gateway_redis_errors_total",
            "Redis commands that failed or timed out.",
            registry=reg,
        ),
        upstream_throttled=Counter(
            "gateway_upstream_throttled_total",
            "Upstream replies that refused a call for quota (HTTP 429, StreamOne status 8).",
            ["upstream"],
            registry=reg,
        ),
        cooldowns=Counter(
            "gateway_upstream_cooldowns_total",
            "Shared cool-downs put on an upstream account after upstream pushback.",
            ["upstream"],
            registry=reg,
        ),
        limiter_backend=Gauge(
            "gateway_ratelimit_fallback_active",
            "1 while the limiter runs on its Redis-error fallback instead of Redis.",
            multiprocess_mode="livemax",
            registry=reg,
        ),
        circuit_open=Gauge(
            "gateway_circuit_open",
            "1 while the circuit breaker for a dependency is open.",
            ["dependency"],
            multiprocess_mode="livemax",
            registry=reg,
        ),
        upstream_failures=Counter(
            "gateway_upstream_failures_total",
            "Exchanges with an upstream that failed without a usable reply, by reason.",
            ["upstream", "reason"],
            registry=reg,
        ),
        circuit_state=Gauge(
            "gateway_circuit_state",
            "Circuit breaker of an upstream: 0 closed, 1 open, 2 half-open (per process).",
            ["upstream"],
            multiprocess_mode="livemax",
            registry=reg,
        ),
        circuit_transitions=Counter(
            "gateway_circuit_transitions_total",
            "Circuit breaker state changes of an upstream, by the state entered.",
            ["upstream", "to"],
            registry=reg,
        ),
        config_reloads=Counter(
            "gateway_config_reloads_total",
            "Config reloads (SIGHUP): ok (in force) or refused (invalid, old config kept).",
            ["result"],
            registry=reg,
        ),
        retries=Counter(
            "gateway_upstream_retries_total",
            "Calls sent to an upstream again, by the reason of the resend.",
            ["upstream", "reason"],
            registry=reg,
        ),
        load_shed=Counter(
            "gateway_load_shed_total",
            "Work the gateway refused beyond a capacity bound (server.*), by reason.",
            ["reason"],
            registry=reg,
        ),
        fallback_decisions=Counter(
            "gateway_ratelimit_fallback_decisions_total",
            "Limiter decisions made without Redis (redis.on_error), by reason.",
            ["upstream", "reason"],
            registry=reg,
        ),
        fallback_seconds=Counter(
            "gateway_ratelimit_fallback_seconds_total",
            "Time the limiter's Redis circuit breaker has been open (decisions on fallback).",
            registry=reg,
        ),
        circuit_openings=Counter(
            "gateway_circuit_openings_total",
            "Times the circuit breaker of a dependency opened.",
            ["dependency"],
            registry=reg,
        ),
        oauth_replacements=Counter(
            "gateway_oauth_token_replacements_total",
            "Onboardings that replaced a user's stored upstream token (?replace=true).",
            ["upstream"],
            registry=reg,
        ),
        build_info=build,
    )


def prime_metrics(
    metrics: Metrics,
    upstreams: Mapping[str, Iterable[str]],
    dependencies: Iterable[str] = (),
) -> None:
    """Create every labelled series the config makes possible, at zero.

    ``upstreams`` maps each configured upstream to its rate-limit policy names;
    ``dependencies`` names the circuit-broken dependencies. A counter that has
    never been incremented would otherwise be *absent*, and ``rate()`` over an
    absent series is "no data", not 0: a dashboard would show holes and an
    alert on ``rate(...) > 0`` could never see the transition from nothing.
    All the sets are bounded by the config (docs/contract.md §4).
    """
    for name, policies in upstreams.items():
        metrics.inflight.labels(name)
        metrics.upstream_throttled.labels(name)
        metrics.cooldowns.labels(name)
        for reason in UPSTREAM_FAILURES:
            metrics.upstream_failures.labels(name, reason)
        for reason in FALLBACK_REASONS:
            metrics.fallback_decisions.labels(name, reason)
        for result in RENEWAL_RESULTS:
            metrics.auth_renewals.labels(name, result)
        for policy in policies:
            for decision in DECISIONS:
                metrics.ratelimit_decisions.labels(name, policy, decision)
    for dependency in dependencies:
        metrics.circuit_open.labels(dependency)
        metrics.circuit_openings.labels(dependency)
    for result in RELOAD_RESULTS:
        metrics.config_reloads.labels(result)
    for reason in SHED_REASONS:
        metrics.load_shed.labels(reason)
