"""Shared key-value state: Redis when configured, memory otherwise.

:class:`RedisStore` is where the key-value store's Redis errors become gateway
errors (a 503 ``upstream_unavailable``), counted in ``gateway_redis_errors_total``.
The limiter translates its own in ``limiter_redis.py``.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from gateway.config import GatewayConfig
from gateway.errors import UpstreamUnavailable
from gateway.metrics import Metrics
from gateway.server.redis_client import REDIS_ERRORS, redis_failed
from gateway.upstreams.base import KeyValueStore

_TAKE = "local v = redis.call('GET', KEYS[1]); redis.call('DEL', KEYS[1]); return v"


class MemoryStore:
    """The in-memory store (no ``REDIS_URL``): one process, entries expire like Redis keys.

    Expired entries are swept, not only hidden: every write first deletes the
    entries whose time is up, found in a heap ordered by expiry, so abandoned
    onboarding states (``PENDING_TTL``) never pile up. A heap entry whose key
    was since rewritten is stale and skipped. Cost: O(log n) per write.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._expiries: list[tuple[float, str]] = []  # heap of (expires, key)

    def __len__(self) -> int:
        return len(self._data)

    async def get(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= self._clock():
            del self._data[key]
            return None
        return value

    async def take(self, key: str) -> bytes | None:
        value = await self.get(key)  # no suspension in between: atomic in the loop
        self._data.pop(key, None)
        return value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        now = self._clock()
        self._sweep(now)
        expires = None if ttl is None else now + ttl
        self._data[key] = (value, expires)
        if expires is not None:
            heapq.heappush(self._expiries, (expires, key))

    def _sweep(self, now: float) -> None:
        heap = self._expiries
        while heap and heap[0][0] <= now:
            expires, key = heapq.heappop(heap)
            item = self._data.get(key)
            if item is not None and item[1] == expires:  # not rewritten since
                del self._data[key]


class RedisStore:
    def __init__(self, redis: Any, prefix: str, metrics: Metrics | None = None) -> None:
        self._redis = redis
        self._prefix = prefix
        self._metrics = metrics

    @asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        try:
            yield
        except REDIS_ERRORS as exc:
            redis_failed(exc, self._metrics)
            raise UpstreamUnavailable("the token store (Redis) is unavailable") from exc

    async def get(self, key: str) -> bytes | None:
        async with self._translated():
            value = await self._redis.get(f"{self._prefix}:kv:{key}")
        return value if value is None else bytes(value)

    async def take(self, key: str) -> bytes | None:
        """GET and DEL in one script: atomic on every Redis (GETDEL needs 6.2) and
        in a cluster (one key)."""
        async with self._translated():
            value = await self._redis.eval(_TAKE, 1, f"{self._prefix}:kv:{key}")
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
