"""metrics.py without processes: bounded labels, buckets, zero-primed series."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from gateway.metrics import (
    DELAY_BUCKETS,
    LATENCY_BUCKETS,
    OVERHEAD_BUCKETS,
    create_metrics,
    method_label,
    prime_metrics,
)
from gateway.server.app import create_app
from gateway.server.keys import METRICS
from tests.conftest import make_config
from tests.harness import Standins


def test_unknown_methods_collapse_to_other() -> None:
    assert method_label("GET") == "GET"
    assert method_label("PROPFIND") == "OTHER"
    assert method_label("get") == "OTHER"


def test_buckets_fit_a_proxy() -> None:
    assert OVERHEAD_BUCKETS[0] <= 0.0001 and OVERHEAD_BUCKETS[-1] <= 1
    assert LATENCY_BUCKETS[0] <= 0.001 and LATENCY_BUCKETS[-1] >= 30
    assert DELAY_BUCKETS[-1] >= 10
    for buckets in (OVERHEAD_BUCKETS, LATENCY_BUCKETS, DELAY_BUCKETS):
        assert list(buckets) == sorted(set(buckets))


def test_each_app_gets_its_own_registry() -> None:
    a, b = create_metrics(), create_metrics()
    a.redis_errors.inc()
    assert b"gateway_redis_errors_total 0.0" in generate_latest(b.registry)


def test_prime_creates_every_configured_series_at_zero() -> None:
    metrics = create_metrics(CollectorRegistry())
    prime_metrics(metrics, {"buzzstream": ["per_user"], "beeswax": []}, ["redis"])
    text = generate_latest(metrics.registry).decode()
    for line in (
        'gateway_inflight_requests{upstream="buzzstream"} 0.0',
        'gateway_auth_renewals_total{result="error",upstream="beeswax"} 0.0',
        'gateway_auth_renewals_total{result="ok",upstream="buzzstream"} 0.0',
        'gateway_upstream_throttled_total{upstream="beeswax"} 0.0',
        'gateway_upstream_cooldowns_total{upstream="buzzstream"} 0.0',
        'gateway_ratelimit_decisions_total{decision="rejected",policy="per_user",'
        'upstream="buzzstream"} 0.0',
        'gateway_circuit_open{dependency="redis"} 0.0',
    ):
        assert line in text, line
    assert 'upstream="beeswax"' not in "".join(
        line for line in text.splitlines() if line.startswith("gateway_ratelimit_decisions")
    )


def test_the_app_primes_from_its_config(standins: Standins) -> None:
    config = make_config(standins)
    app = create_app(config)
    text = generate_latest(app[METRICS].registry).decode()
    for name, upstream in config.upstreams.items():
        assert f'gateway_inflight_requests{{upstream="{name}"}} 0.0' in text
        for policy in upstream.rate_limits:
            assert f'policy="{policy.name}",upstream="{name}"' in text
    assert 'gateway_build_info{version="' in text


def test_no_created_series_double_the_exposition() -> None:
    metrics = create_metrics(CollectorRegistry())
    metrics.requests.labels("bizzstream", "GET", "200", "ok").inc()
    metrics.request_duration.labels("bizzstream", "GET").observe(0.1)
    assert b"_created" not in generate_latest(metrics.registry)
