"""``upstreams.<name>.circuit`` and ``.retry``: absent means off; present, documented defaults."""

from __future__ import annotations

from pathlib import Path

from gateway.config import load_config
from gateway.core.circuit import CircuitPolicy
from gateway.core.retry import RetryPolicy

CONFIG = """
upstreams:
  bizzstream:
    base_url: http://127.0.0.1:1
    auth: {token: t, environment_id: e}
    circuit: {}
  beeswax:
    base_url: http://127.0.0.1:1
    auth: {email: a@b.c, password: p}
    circuit: {failures: 2, failure_ratio: 0.25, window: 1m, min_calls: 8, open_for: 5s,
              half_open_probes: 3}
  buzzstream:
    base_url: http://127.0.0.1:1
    auth: {consumer_key: k, consumer_secret: s}
"""


def test_circuit_settings(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG)
    ups = load_config(path, env={}).upstreams
    assert ups["bizzstream"].circuit == CircuitPolicy(
        failures=5, failure_ratio=0.5, window=30.0, min_calls=20, open_for=30.0,
        half_open_probes=1,
    )  # fmt: skip
    assert ups["beeswax"].circuit == CircuitPolicy(2, 0.25, 60.0, 8, 5.0, 3)
    assert ups["buzzstream"].circuit is None


RETRY_CONFIG = """
upstreams:
  bizzstream:
    base_url: http://127.0.0.1:1
    auth: {token: t, environment_id: e}
    retry: {}
  beeswax:
    base_url: http://127.0.0.1:1
    auth: {email: a@b.c, password: p}
    retry: {methods: [get, put], statuses: [503], attempts: 5, retry_429: false,
            backoff_base: 50ms, backoff_max: 1s, deadline: 3s,
            budget: {ratio: 0.5, window: 1m, min: 0}}
  buzzstream:
    base_url: http://127.0.0.1:1
    auth: {consumer_key: k, consumer_secret: s}
"""


def test_retry_settings(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(RETRY_CONFIG)
    ups = load_config(path, env={}).upstreams
    assert ups["bizzstream"].retry == RetryPolicy()
    assert ups["beeswax"].retry == RetryPolicy(
        methods=frozenset({"GET", "PUT"}), attempts=5, statuses=frozenset({503}),
        retry_429=False, backoff_base=0.05, backoff_max=1.0, deadline=3.0, budget_ratio=0.5,
        budget_window=60.0, budget_min=0,
    )  # fmt: skip
    assert ups["buzzstream"].retry is None
