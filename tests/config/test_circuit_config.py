"""``upstreams.<name>.circuit``: absent means no breaker; present, documented defaults."""

from __future__ import annotations

from pathlib import Path

from gateway.config import load_config
from gateway.core.circuit import CircuitPolicy

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
