"""Issue 10 item 13: the time the limiter spends on its fallback is a metric."""

from __future__ import annotations

import asyncio

from gateway.metrics import create_metrics
from tests.harness import free_port
from tests.quota.conftest import Factory, policy, sample


async def test_fallback_time_openings_and_decisions_are_counted(make_limiter: Factory) -> None:
    metrics = create_metrics()
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: the breaker opens at start
    limiter = await make_limiter(url=dead, metrics=metrics, probe_interval=0.1)
    decision = await limiter.acquire("bizzstream", [policy()], "acct", None)
    assert decision.backend == "memory"
    await asyncio.sleep(0.55)  # several probes while open: the counter moves meanwhile
    assert sample(metrics, "gateway_circuit_openings_total", dependency="redis") == 1
    assert 0.3 < sample(metrics, "gateway_ratelimit_fallback_seconds_total") < 2.0
    labels = {"upstream": "bizzstream", "reason": "circuit_open"}
    assert sample(metrics, "gateway_ratelimit_fallback_decisions_total", **labels) == 1
