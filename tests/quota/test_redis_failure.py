"""Redis failing under the limiter: on_error local/open/closed, circuit breaker, recovery."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from gateway.metrics import create_metrics
from tests.harness import RedisServer, start_redis
from tests.quota.conftest import Factory, policy, sample

UP, ACCT = "beeswax", "tenant"


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop and start."""
    server = start_redis()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


async def wait_until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(5.0):
        while not check():  # noqa: ASYNC110 - polls a status the limiter owns
            await asyncio.sleep(0.02)


async def test_local_fallback_divides_limits_and_does_not_retry_per_call(
    make_limiter: Factory, own_redis: RedisServer
) -> None:
    metrics = create_metrics()
    lim = await make_limiter(url=own_redis.url, metrics=metrics, replicas=2, probe_interval=60.0)
    p = policy(limit=4, period=60, burst=4)
    assert (await lim.acquire(UP, [p], ACCT, None)).backend == "redis"
    own_redis.stop()

    first = await lim.acquire(UP, [p], ACCT, None)
    assert first.allowed and first.backend == "memory"
    # two replicas: this process has half the quota, a burst of 2, of which the
    # call charged in Redis (and mirrored here) used one
    rest = [await lim.acquire(UP, [p], ACCT, None) for _ in range(20)]
    assert not any(d.allowed for d in rest)
    assert first.headers[0] == ("RateLimit-Policy", '"per_user";q=4;w=120')
    assert sample(metrics, "gateway_redis_errors_total") == 1  # the breaker is open
    assert sample(metrics, "gateway_ratelimit_fallback_active") == 1
    assert sample(metrics, "gateway_circuit_open", dependency="redis") == 1
    assert lim.status().startswith("local fallback: Redis unreachable since")


async def test_recovers_by_itself_when_redis_is_back(
    make_limiter: Factory, own_redis: RedisServer
) -> None:
    metrics = create_metrics()
    lim = await make_limiter(url=own_redis.url, metrics=metrics, probe_interval=0.1)
    p = policy(limit=100, period=1)
    own_redis.stop()
    assert (await lim.acquire(UP, [p], ACCT, None)).backend == "memory"
    await asyncio.sleep(0.35)
    assert sample(metrics, "gateway_redis_errors_total") >= 2  # the probes failed too
    own_redis.start()  # empty: the script must be loaded again
    await wait_until(lambda: lim.status() == "redis")
    decision = await lim.acquire(UP, [p], ACCT, None)
    assert decision.allowed and decision.backend == "redis"
    assert sample(metrics, "gateway_ratelimit_fallback_active") == 0
    assert sample(metrics, "gateway_circuit_open", dependency="redis") == 0


async def test_open_lets_calls_through(make_limiter: Factory, own_redis: RedisServer) -> None:
    lim = await make_limiter(url=own_redis.url, on_error="open", probe_interval=60.0)
    own_redis.stop()
    p = policy(limit=1, period=60, burst=1)
    assert all([(await lim.acquire(UP, [p], ACCT, None)).allowed for _ in range(5)])


async def test_closed_refuses_calls_with_policies(
    make_limiter: Factory, own_redis: RedisServer
) -> None:
    lim = await make_limiter(url=own_redis.url, on_error="closed", probe_interval=60.0)
    own_redis.stop()
    refused = await lim.acquire(UP, [policy()], ACCT, None)
    assert not refused.allowed and refused.unavailable
    assert (await lim.acquire(UP, [], ACCT, None)).allowed  # nothing to enforce


async def test_a_hung_redis_costs_one_short_timeout(
    make_limiter: Factory, own_redis: RedisServer
) -> None:
    lim = await make_limiter(url=own_redis.url, probe_interval=60.0)
    p = policy(limit=100, period=1)
    assert (await lim.acquire(UP, [p], ACCT, None)).backend == "redis"
    assert own_redis.proc is not None
    os.kill(own_redis.proc.pid, signal.SIGSTOP)
    started = time.monotonic()
    decision = await lim.acquire(UP, [p], ACCT, None)
    took = time.monotonic() - started
    os.kill(own_redis.proc.pid, signal.SIGCONT)
    assert decision.allowed and decision.backend == "memory"
    assert took < 0.5  # redis.timeout (50 ms), not redis-py's retries or defaults


async def test_cooldown_during_an_outage_is_kept_locally(
    make_limiter: Factory, own_redis: RedisServer
) -> None:
    lim = await make_limiter(url=own_redis.url, probe_interval=60.0)
    own_redis.stop()
    await lim.acquire(UP, [], ACCT, None)  # opens the circuit
    await lim.cooldown(UP, ACCT, 5.0)
    refused = await lim.acquire(UP, [], ACCT, None)
    assert not refused.allowed and refused.policy == "cooldown"


async def test_the_fallback_continues_the_shared_queue(
    make_limiter: Factory, own_redis: RedisServer
) -> None:
    lim = await make_limiter(url=own_redis.url, probe_interval=60.0)
    p = policy(limit=5, period=1, burst=1, on_exceed="delay")
    loop = asyncio.get_running_loop()
    shared = [await lim.acquire(UP, [p], ACCT, None) for _ in range(3)]  # 0, 0.2, 0.4
    last_shared = loop.time() + shared[-1].delay
    assert [d.backend for d in shared] == ["redis"] * 3
    own_redis.stop()
    local = await lim.acquire(UP, [p], ACCT, None)
    assert local.backend == "memory"
    assert loop.time() + local.delay - last_shared == pytest.approx(0.2, abs=0.02)


async def test_reservations_made_in_memory_are_handed_to_redis_on_recovery(
    make_limiter: Factory, own_redis: RedisServer
) -> None:
    lim = await make_limiter(url=own_redis.url, probe_interval=0.05)
    p = policy(limit=5, period=1, burst=1, on_exceed="delay")
    own_redis.stop()
    waits = [(await lim.acquire(UP, [p], ACCT, None)).delay for _ in range(5)]
    assert waits[-1] == pytest.approx(0.8, abs=0.02)  # in memory: 0 ... 0.8
    own_redis.start()
    await wait_until(lambda: lim.status() == "redis")
    queued = await lim.acquire(UP, [p], ACCT, None)
    assert queued.backend == "redis" and queued.delay > 0.2  # behind the memory slots


async def test_a_frozen_redis_costs_each_call_one_timeout_and_one_error_per_round_trip(
    make_limiter: Factory, own_redis: RedisServer
) -> None:
    """Calls queued behind a round trip in flight fail with it (they are not
    sent afterwards), each decision comes within redis.timeout, and the error
    is counted once per failed round trip, not once per caller."""
    metrics = create_metrics()
    lim = await make_limiter(url=own_redis.url, metrics=metrics, timeout=0.1, probe_interval=60.0)
    p = policy(limit=1000, period=1)
    assert (await lim.acquire(UP, [p], ACCT, None)).backend == "redis"
    trips = lim.runner.round_trips
    assert own_redis.proc is not None
    os.kill(own_redis.proc.pid, signal.SIGSTOP)
    try:

        async def timed(delay: float) -> tuple[float, str]:
            await asyncio.sleep(delay)
            started = time.perf_counter()
            decision = await lim.acquire(UP, [p], ACCT, None)
            return time.perf_counter() - started, decision.backend

        results = await asyncio.gather(timed(0), *(timed(0.03) for _ in range(20)))
    finally:
        os.kill(own_redis.proc.pid, signal.SIGCONT)
    assert all(backend == "memory" for _, backend in results)
    # the bug took up to 2 x timeout (its own round trip after the one in flight)
    assert max(took for took, _ in results) <= 0.16, results
    assert lim.runner.round_trips == trips + 1  # the queued calls were never sent
    assert sample(metrics, "gateway_redis_errors_total") == 1
