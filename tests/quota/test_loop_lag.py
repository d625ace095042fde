"""Issue 10 item 13: the breaker measures Redis, not the gateway's own event-loop lag.

A task that blocks the loop for longer than ``redis.timeout`` at a time stands
in for a gateway at 100% CPU; Redis itself is healthy. Before, the round trip's
timeout expired while Redis's answer sat unread in the socket and the breaker
opened: decisions went local, per process, against a healthy Redis.
"""

from __future__ import annotations

import asyncio
import time

from gateway.metrics import create_metrics
from gateway.server.redis_time import within
from tests.quota.conftest import Factory, policy, sample

BLOCK = 0.08  # each slice of CPU-bound work holds the loop longer than the 50 ms timeout


async def _hog(stop: asyncio.Event) -> None:
    while not stop.is_set():
        time.sleep(BLOCK)  # noqa: ASYNC251 - blocking on purpose: a saturated loop
        await asyncio.sleep(0)


async def test_a_saturated_loop_does_not_open_the_breaker_against_a_healthy_redis(
    make_limiter: Factory,
) -> None:
    metrics = create_metrics()
    limiter = await make_limiter(metrics=metrics, timeout=0.05)
    quota = [policy(limit=1_000_000, burst=1_000_000)]
    stop = asyncio.Event()
    hog = asyncio.create_task(_hog(stop))
    try:
        decisions = []
        for _wave in range(4):
            decisions += await asyncio.gather(
                *(limiter.acquire("bizzstream", quota, f"acct{i}", None) for i in range(8))
            )
    finally:
        stop.set()
        await hog
    assert {d.backend for d in decisions} == {"redis"}
    assert sample(metrics, "gateway_circuit_openings_total", dependency="redis") == 0
    assert sample(metrics, "gateway_redis_errors_total") == 0
    for reason in ("circuit_open", "error"):
        labels = {"upstream": "bizzstream", "reason": reason}
        assert sample(metrics, "gateway_ratelimit_fallback_decisions_total", **labels) == 0


async def test_a_redis_that_does_not_answer_still_times_out_on_a_free_loop() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = time.monotonic()
    try:
        await within(never, 0.05)
    except TimeoutError:
        pass
    else:  # pragma: no cover
        raise AssertionError("no timeout")
    assert 0.04 < time.monotonic() - started < 0.2
    assert never.cancelled()


async def test_a_loop_that_stays_busy_meets_the_hard_bound() -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    hog = asyncio.create_task(_hog(stop))
    started = time.monotonic()
    try:
        await within(never, 0.05)
    except TimeoutError:
        pass
    finally:
        stop.set()
        await hog
    assert 0.9 < time.monotonic() - started < 2.5  # hard_timeout(0.05) is 1 s
