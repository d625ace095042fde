"""A short Redis lock for single-flight work across replicas (one login at a time).

- Taken with ``SET key token NX PX ttl``: set-if-absent with an expiry, so a
  replica that dies holding it delays the others by at most ``ttl``.
- The token is unique per acquisition (``host:pid:random``; no secret, and it
  names the holder for operators). Only its owner releases it, by a
  compare-and-delete script, so a lock that expired and was taken by another
  replica is never deleted by the first.
- While the work runs, the owner extends the expiry every ``ttl / 3`` by a
  compare-and-``PEXPIRE`` script (a watchdog), so a slow login keeps its lock
  while a dead owner's lock still ends within ``ttl``.

Scripts run with ``EVAL`` (a few hundred bytes, once per login): that routes by
key on Redis Cluster too. Redis errors propagate (the caller translates them).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from typing import Any

from gateway.server.tasks import stop_task

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def lock_token() -> str:
    """``host:pid:random``: unique per acquisition, and names the holder."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


class RedisLock:
    """One acquisition of the lock at ``key`` (create one per attempt)."""

    def __init__(self, redis: Any, key: str, ttl: float) -> None:
        self._redis = redis
        self.key = key
        self.ttl_ms = max(1, int(ttl * 1000))
        self.token = lock_token()
        self._watchdog: asyncio.Task[None] | None = None

    async def acquire(self) -> bool:
        """True when this caller now holds the lock (and its watchdog runs)."""
        taken = await self._redis.set(self.key, self.token, nx=True, px=self.ttl_ms)
        if taken:
            self._watchdog = asyncio.get_running_loop().create_task(self._extend_forever())
        return bool(taken)

    async def release(self) -> bool:
        """Delete the lock if this caller still owns it; True when it did."""
        watchdog, self._watchdog = self._watchdog, None
        await stop_task(watchdog)
        return bool(await self._redis.eval(RELEASE, 1, self.key, self.token))

    async def extend(self) -> bool:
        return bool(await self._redis.eval(EXTEND, 1, self.key, self.token, self.ttl_ms))

    async def _extend_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                if not await self.extend():
                    return  # lost (expired and taken): the work finishes, nothing to extend
            except Exception:  # a failed extension is retried; the expiry bounds the rest
                continue
