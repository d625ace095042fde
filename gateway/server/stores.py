"""Shared key-value state: Redis when configured, memory otherwise.

:class:`RedisStore` is where the key-value store's Redis errors become gateway
errors (a 503 ``upstream_unavailable``), counted in ``gateway_redis_errors_total``.
The limiter translates its own in ``limiter_redis.py``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.exceptions import RedisError

from gateway.config import GatewayConfig
from gateway.errors import UpstreamUnavailable
from gateway.metrics import Metrics
from gateway.upstreams.base import KeyValueStore


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires < time.monotonic():
            del self._data[key]
            return None
        return value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._data[key] = (value, None if ttl is None else time.monotonic() + ttl)


class RedisStore:
    def __init__(self, redis: Any, prefix: str, metrics: Metrics | None = None) -> None:
        self._redis = redis
        self._prefix = prefix
        self._metrics = metrics

    @asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        try:
            yield
        except (RedisError, OSError, TimeoutError) as exc:
            if self._metrics is not None:
                self._metrics.redis_errors.inc()
            raise UpstreamUnavailable("the token store (Redis) is unavailable") from exc

    async def get(self, key: str) -> bytes | None:
        async with self._translated():
            value = await self._redis.get(f"{self._prefix}:kv:{key}")
        return value if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        px = None if ttl is None else max(1, int(ttl * 1000))
        async with self._translated():
            await self._redis.set(f"{self._prefix}:kv:{key}", value, px=px)


def create_store(
    config: GatewayConfig, redis: Any, metrics: Metrics | None = None
) -> KeyValueStore:
    if redis is None:
        return MemoryStore()
    return RedisStore(redis, config.redis.key_prefix, metrics)
