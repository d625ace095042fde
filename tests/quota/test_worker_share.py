"""server.workers processes share a replica's quotas when the limits are in memory.

Without Redis each worker takes ``1 / workers`` of every quota; on the Redis
fallback (``on_error: local``) each takes ``1 / (replicas × workers)``, so the
pod's workers together stay within the replica's share (docs/ratelimits.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.config import RedisConfig
from gateway.metrics import create_metrics
from gateway.server.limiter import Limiter
from gateway.server.limiter_redis import create_limiter
from tests.harness import RedisServer, start_redis
from tests.quota.conftest import client, policy, redis_config

UP, ACCT = "beeswax", "tenant"
QUOTA = policy(limit=12, period=60, burst=12)


async def allowed(limiter: Limiter, calls: int = 30) -> int:
    return sum([(await limiter.acquire(UP, [QUOTA], ACCT, None)).allowed for _ in range(calls)])


@pytest.mark.parametrize(("workers", "expected"), [(1, 12), (2, 6), (3, 4)])
async def test_without_redis_each_worker_takes_its_share(workers: int, expected: int) -> None:
    config = RedisConfig(None, 0.05, "local", 1, "gw", 1.0)
    limiter = create_limiter(config, None, create_metrics(), workers=workers)
    # a burst of 12 a minute for the replica: 12 / workers in each worker
    assert await allowed(limiter) == expected
    assert limiter.status() == (
        "memory (limits are per process)"
        if workers == 1
        else f"memory (limits are per process: 1/{workers} of each in this one)"
    )


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


async def fallback_allowed(server: RedisServer, replicas: int, workers: int) -> int:
    """Calls one process lets through on the local fallback, Redis being down."""
    server.start()
    conn = client(server.url)
    config = redis_config(server.url, replicas=replicas, probe_interval=60.0)
    limiter = create_limiter(config, conn, create_metrics(), workers=workers)
    await limiter.start()
    try:
        server.stop()
        return await allowed(limiter)
    finally:
        await limiter.aclose()
        await conn.aclose()


async def test_redis_fallback_divides_by_replicas_times_workers(own_redis: RedisServer) -> None:
    own_redis.stop()
    two_by_three = await fallback_allowed(own_redis, replicas=2, workers=3)
    six_by_one = await fallback_allowed(own_redis, replicas=6, workers=1)
    two_by_one = await fallback_allowed(own_redis, replicas=2, workers=1)
    assert two_by_three == six_by_one == 2  # a burst of 12 / (2 × 3)
    assert two_by_one == 6
