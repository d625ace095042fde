"""Shared key-value state: Redis when configured, memory otherwise."""

from __future__ import annotations

import time
from typing import Any

from gateway.config import GatewayConfig
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
    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(f"{self._prefix}:kv:{key}")
        return value if value is None else bytes(value)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        px = None if ttl is None else max(1, int(ttl * 1000))
        await self._redis.set(f"{self._prefix}:kv:{key}", value, px=px)


def create_store(config: GatewayConfig, redis: Any) -> KeyValueStore:
    if redis is None:
        return MemoryStore()
    return RedisStore(redis, config.redis.key_prefix)
