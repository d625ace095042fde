"""Fixtures for the Redis limiter against a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.config import RatePolicy, RedisConfig
from gateway.config_reader import Secret
from gateway.metrics import Metrics, create_metrics
from gateway.server.limiter_redis import RedisLimiter
from gateway.server.redis_time import hard_timeout

Factory = Callable[..., Awaitable[RedisLimiter]]


def policy(name: str = "per_user", **fields: Any) -> RatePolicy:
    base = RatePolicy(
        name=name,
        match="*",
        methods=frozenset(),
        limit=5,
        period=1.0,
        burst=5,
        on_exceed="reject",
        max_delay=10.0,
        shadow=False,
        scope="account",
    )
    return replace(base, **fields)


def redis_config(url: str, **fields: Any) -> RedisConfig:
    base = RedisConfig(
        url=Secret(url),
        timeout=0.05,
        on_error="local",
        replicas=1,
        key_prefix="gw",
        probe_interval=0.1,
    )
    return replace(base, **fields)


def client(url: str, timeout: float = 0.05) -> aioredis.Redis:
    """Like the app's client: redis-py's socket timeouts are the hard bound (the
    limiter's own ``timeout`` is of Redis's time), no retry on timeout."""
    hard = hard_timeout(timeout)
    return aioredis.Redis.from_url(
        url, socket_timeout=hard, socket_connect_timeout=hard, retry_on_timeout=False
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
async def make_limiter(redis_flushed: str) -> AsyncIterator[Factory]:
    """Build RedisLimiters ("replicas") on the shared, flushed Redis."""
    made: list[tuple[RedisLimiter, aioredis.Redis]] = []

    async def build(
        url: str | None = None, metrics: Metrics | None = None, batch: bool = True, **cfg: Any
    ) -> RedisLimiter:
        target = url or redis_flushed
        conn = client(target, cfg.get("timeout", 0.05))
        limiter = RedisLimiter(
            conn, redis_config(target, **cfg), metrics or create_metrics(), batch=batch
        )
        await limiter.start()
        made.append((limiter, conn))
        return limiter

    yield build
    for limiter, conn in made:
        await limiter.aclose()
        await conn.aclose()


@pytest.fixture
async def raw_redis(redis_flushed: str) -> AsyncIterator[aioredis.Redis]:
    conn = aioredis.Redis.from_url(redis_flushed)
    yield conn
    await conn.aclose()
