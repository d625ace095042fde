"""Upstream sessions shared by every gateway replica, in Redis (``REDIS_URL``).

One Beeswax cookie jar, one StreamOne session, one OAuth 2 client-credentials
token per upstream account for the whole fleet (``docs/operations.md``,
Running a fleet):

- The record ``<prefix>:{<upstream>:<account>}:!session`` holds
  ``<id>\\n<Fernet token>``: the login's unique id in clear (no secret; scripts
  compare it) and the auth's state encrypted with ``token_store_key``. Its TTL
  is the session's lifetime, as the auth says.
- A renewal is single-flight across replicas: the replica that takes the lock
  ``...:!lock`` (:mod:`gateway.server.redis_lock`) checks the record again,
  deletes it if it still names the rejected session (the fleet-wide
  invalidation, once), logs in and stores the new session; the others poll the
  record every ``POLL`` seconds and adopt the new session (``joined``), or take
  the lock themselves when it is released or expired without one. Waiting is
  bounded by ``redis.session_wait``, then ``upstream_unavailable``.
- ``publish`` stores an update of the same login (rotated cookies, a later
  expiry) by compare-id-and-set, so it never overwrites a newer login.
- Redis errors are counted in ``gateway_redis_errors_total``; a renewal
  retries them while they last less than the lock's expiry, then the replica
  logs in on its own (per-process single-flight still holds): a Redis outage
  must not stop calls to the upstreams. The fleet's client has its own
  timeout (``redis_client.SESSION_TIMEOUT``), not the limiter's 50 ms.

Every Redis exception of this module is caught here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Callable
from typing import Any

from cryptography.fernet import InvalidToken, MultiFernet

from gateway.config import GatewayConfig
from gateway.core.quota import key_tag
from gateway.errors import UpstreamUnavailable
from gateway.logs import get_logger
from gateway.metrics import Metrics
from gateway.server.redis_client import REDIS_ERRORS, redis_failed
from gateway.server.redis_lock import RedisLock
from gateway.server.tokenstore import fernet_from
from gateway.upstreams.base import Login, SharedSession

log = get_logger("gateway.fleet")
POLL = 0.05  # how often a waiting replica looks for the new session

UPDATE = """
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, #ARGV[1]) == ARGV[1] then
  if tonumber(ARGV[3]) > 0 then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  else
    redis.call('SET', KEYS[1], ARGV[2])
  end
  return 1
end
return 0
"""

INVALIDATE = """
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, #ARGV[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _px(ttl: float | None) -> int:
    """Milliseconds for ``PX``; 0 means no expiry (a lifetime the upstream did not say)."""
    return 0 if ttl is None else max(1, int(ttl * 1000))


class RedisSessionFleet:
    """:class:`~gateway.upstreams.base.SessionFleet` over a Redis (or cluster) client."""

    def __init__(
        self,
        redis: Any,
        prefix: str,
        cipher: MultiFernet,
        *,
        lock_ttl: float,
        wait: float,
        metrics: Metrics | None = None,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._cipher = cipher
        self.lock_ttl = lock_ttl
        self.wait = wait
        self._metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()

    def keys(self, upstream: str, key: str) -> tuple[str, str]:
        """The record and lock keys (one hash tag: one Redis Cluster slot)."""
        tag = key_tag(self._prefix, upstream, key)
        return f"{tag}:!session", f"{tag}:!lock"

    # --- encoding ---------------------------------------------------------------

    def _encode(self, session: SharedSession) -> bytes:
        secret = self._cipher.encrypt(json.dumps(dict(session.data)).encode("utf-8"))
        return session.id.encode("ascii") + b"\n" + secret

    def _decode(self, raw: Any) -> SharedSession | None:
        if not raw:
            return None
        ident, _, secret = bytes(raw).partition(b"\n")
        try:
            data = json.loads(self._cipher.decrypt(secret))
        except (InvalidToken, ValueError):
            log.warning("shared_session_undecryptable", detail="another token_store_key?")
            return None
        return SharedSession(ident.decode("ascii"), data) if isinstance(data, dict) else None

    # --- Redis, errors caught ------------------------------------------------------

    def _failed(self, exc: BaseException, what: str) -> None:
        error = redis_failed(exc, self._metrics)
        log.warning("shared_session_redis_error", operation=what, error=error)

    async def _get(self, record: str) -> SharedSession | None:
        return self._decode(await self._redis.get(record))

    async def load(self, upstream: str, key: str) -> SharedSession | None:
        try:
            return await self._get(self.keys(upstream, key)[0])
        except REDIS_ERRORS as exc:
            self._failed(exc, "load")
            return None

    async def _store(self, record: str, session: SharedSession, ttl: float | None) -> None:
        px = _px(ttl)
        try:
            await self._redis.set(record, self._encode(session), px=px or None)
        except REDIS_ERRORS as exc:
            self._failed(exc, "store")

    async def _invalidate(self, record: str, stale: SharedSession) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            if await self._redis.eval(INVALIDATE, 1, record, stale.id + "\n"):
                log.info("shared_session_invalidated", session=stale.id[:8])

    # --- the protocol ---------------------------------------------------------------

    async def renew(
        self,
        upstream: str,
        key: str,
        fresh: Callable[[SharedSession | None], bool],
        login: Login,
    ) -> tuple[SharedSession, bool]:
        record, lock_key = self.keys(upstream, key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        failing_since: float | None = None
        while True:
            lock = RedisLock(self._redis, lock_key, self.lock_ttl)
            try:
                current = await self._get(record)
                if fresh(current):
                    assert current is not None
                    return current, True
                taken = await lock.acquire()
                failing_since = None
            except REDIS_ERRORS as exc:
                self._failed(exc, "renew")
                failing_since = failing_since or loop.time()
                if loop.time() - failing_since >= self.lock_ttl or loop.time() >= deadline:
                    data, _ = await login()  # alone: a Redis outage must not stop the calls
                    return SharedSession(secrets.token_hex(16), data), False
                taken = False
            if taken:
                try:
                    return await self._login_holding(record, fresh, login)
                finally:
                    try:
                        await lock.release()
                    except REDIS_ERRORS as exc:  # it expires by itself
                        self._failed(exc, "unlock")
            if loop.time() >= deadline:
                raise UpstreamUnavailable(
                    f"another gateway replica is logging in to {upstream}; no new session "
                    f"within {self.wait:g}s (redis.session_wait)",
                    upstream=upstream,
                    retry_after=1.0,
                )
            await asyncio.sleep(POLL)

    async def _login_holding(
        self, record: str, fresh: Callable[[SharedSession | None], bool], login: Login
    ) -> tuple[SharedSession, bool]:
        try:
            current = await self._get(record)  # it may have changed before the lock
        except REDIS_ERRORS as exc:
            self._failed(exc, "renew")
            current = None
        if fresh(current):
            assert current is not None
            return current, True
        if current is not None:
            await self._invalidate(record, current)  # once, for the whole fleet
        data, ttl = await login()
        session = SharedSession(secrets.token_hex(16), data)
        await self._store(record, session, ttl)
        return session, False

    def publish(self, upstream: str, key: str, session: SharedSession, ttl: float | None) -> None:
        record = self.keys(upstream, key)[0]
        task = asyncio.get_running_loop().create_task(self._update(record, session, ttl))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _update(self, record: str, session: SharedSession, ttl: float | None) -> None:
        try:
            await self._redis.eval(
                UPDATE, 1, record, session.id + "\n", self._encode(session), _px(ttl)
            )
        except REDIS_ERRORS as exc:
            self._failed(exc, "publish")

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def create_fleet(config: GatewayConfig, redis: Any, metrics: Metrics) -> RedisSessionFleet | None:
    """The shared sessions when Redis is configured and ``redis.shared_sessions`` is on."""
    if redis is None or not config.redis.shared_sessions:
        return None
    cipher, _ = fernet_from(config.token_store_key)  # config refuses a missing key
    log.info("shared_sessions", detail="upstream sessions are shared by every replica (Redis)")
    return RedisSessionFleet(
        redis,
        config.redis.key_prefix,
        cipher,
        lock_ttl=config.redis.session_lock_ttl,
        wait=config.redis.session_wait,
        metrics=metrics,
    )
