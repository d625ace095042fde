"""The Redis limiter: every policy of a call checked and charged in one round trip.

- The script runs through :class:`~gateway.server.redis_script.ScriptRunner`
  (EVALSHA, NOSCRIPT reload, concurrent calls batched into one pipeline, which
  multiplies the decisions per second: ``bench/limiter.py`` measures it).
- Every Redis operation has ``redis.timeout`` (50 ms by default) in all,
  whatever redis-py would retry, and every decision has it too, from its
  caller's point of view (a call queued behind a round trip in flight gets the
  fallback answer when it expires). Redis exceptions are translated into
  :class:`RedisUnavailable` in ``redis_script.py`` and this module's probe; each failed
  round trip counts once in ``gateway_redis_errors_total``, and fails at once
  the calls queued behind it.
- The first failure opens a :class:`~gateway.server.circuit.CircuitBreaker`:
  calls then get the ``redis.on_error`` answer without touching Redis, while one
  probe (``PING`` + ``SCRIPT LOAD``) runs every ``redis.probe_interval``; when
  it succeeds, Redis is used again. ``local`` is the in-memory GCRA with
  ``1 / redis.replicas`` of each quota; ``open`` lets calls through; ``closed``
  refuses them (503).
- Hand-overs keep the queue: each Redis decision is mirrored into the
  in-memory limiter, and the probe that closes the circuit first seeds Redis
  with what was reserved in memory meanwhile (docs/ratelimits.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Sequence
from typing import Any

from gateway.config import RatePolicy, RedisConfig
from gateway.core.quota import Hold, parse_reply, script_args, seconds
from gateway.logs import get_logger
from gateway.metrics import Metrics
from gateway.server.circuit import CircuitBreaker
from gateway.server.limiter import (
    ALLOW,
    Call,
    Decision,
    ManagedLimiter,
    decision_of,
    plan,
    record,
    record_open,
)
from gateway.server.limiter_memory import MemoryLimiter
from gateway.server.redis_client import REDIS_ERRORS, RedisClient, RedisUnavailable, redis_failed
from gateway.server.redis_script import SCRIPT, ScriptRunner
from gateway.server.redis_time import LagClock, within

log = get_logger("gateway.ratelimit")


class RedisLimiter:
    def __init__(
        self,
        redis: RedisClient,
        config: RedisConfig,
        metrics: Metrics,
        batch: bool = True,
        workers: int = 1,
    ) -> None:
        self._redis = redis
        self._config = config
        self._metrics = metrics
        self._prefix = config.key_prefix
        self._clock = LagClock()
        self.runner = ScriptRunner(
            redis, config.timeout, batch, on_failure=self._failed, clock=self._clock
        )
        # Each process takes its share: replicas × worker processes per replica.
        self._local = MemoryLimiter(metrics, config.key_prefix, share=config.replicas * workers)
        self._breaker = CircuitBreaker(self._probe, config.probe_interval, self._changed)
        self._tasks: set[asyncio.Task[None]] = set()
        self._fallback_since: float | None = None  # monotonic, while the breaker is open

    async def start(self) -> None:
        self._clock.start()
        try:
            await self.runner.load()
        except REDIS_ERRORS as exc:
            self._failed(RedisUnavailable(type(exc).__name__))

    async def aclose(self) -> None:
        await self._clock.aclose()
        await self._breaker.aclose()
        await self.runner.aclose()
        for task in list(self._tasks):
            task.cancel()

    def status(self) -> str:
        if not self._breaker.is_open:
            return "redis"
        since = time.strftime("%H:%M:%SZ", time.gmtime(self._breaker.opened_at))
        return (
            f"{self._config.on_error} fallback: Redis unreachable since {since} "
            f"({self._breaker.failures} failures), probing every {self._config.probe_interval:g}s"
        )

    async def acquire(
        self,
        upstream: str,
        policies: Sequence[RatePolicy],
        account: str,
        user: str | None,
    ) -> Decision:
        if self._breaker.is_open:
            self._metrics.fallback_decisions.labels(upstream, "circuit_open").inc()
            return await self._fallback(upstream, policies, account, user)
        call = plan(self._prefix, upstream, policies, account, user)
        future = self.runner.submit(
            (call.cooldown, *call.keys), ["acquire", script_args(call.limits)]
        )
        abandoned = functools.partial(self._abandoned, upstream, call)
        try:
            # The round trip carrying this call has redis.timeout of Redis's time
            # (not the loop's lag), and a failed round trip fails the calls queued
            # behind it at once: so a decision comes within redis.timeout of a
            # free loop, and goes local only when Redis failed (counted, breaker).
            reply = await asyncio.shield(future)
        except asyncio.CancelledError:
            # The caller left while Redis was answering: give back what it got.
            future.add_done_callback(abandoned)
            raise
        except RedisUnavailable:
            self._metrics.fallback_decisions.labels(upstream, "error").inc()
            return await self._fallback(upstream, policies, account, user)
        outcome = parse_reply(reply, call.limits, call.keys)
        self._local.mirror(outcome)
        decision = decision_of(upstream, outcome, "redis")
        record(self._metrics, upstream, outcome, decision)
        return decision

    async def release(self, upstream: str, decision: Decision) -> None:
        if not decision.holds:
            return
        if decision.backend == "memory":
            await self._local.release(upstream, decision)
        elif not self._breaker.is_open:
            await self._release_holds(decision.holds)

    async def cooldown(self, upstream: str, account: str, seconds: float) -> None:
        self._metrics.cooldowns.labels(upstream).inc()
        self._local.note_cooldown(upstream, account, seconds)  # for the fallback
        if self._breaker.is_open:
            return
        key = plan(self._prefix, upstream, (), account, None).cooldown
        with contextlib.suppress(RedisUnavailable):  # counted by the runner
            await self.runner.submit((key,), ["cooldown", max(0, round(seconds * 1_000_000))])

    async def cooldown_left(self, upstream: str, account: str) -> float:
        """One ``check`` round trip (same timeout and breaker as a decision);
        the copy kept here when Redis is unavailable."""
        if not self._breaker.is_open:
            key = plan(self._prefix, upstream, (), account, None).cooldown
            try:
                left = await within(
                    self.runner.submit((key,), ["check"]), self._config.timeout, self._clock
                )
            except (RedisUnavailable, TimeoutError):
                pass  # counted by the runner
            else:
                return seconds(max(0, int(left)))
        return self._local.cooldown_left_here(upstream, account)

    async def _release_holds(self, held: Sequence[Hold]) -> None:
        args: list[str | int] = ["release"]
        for hold in held:
            args += [str(hold.expected_us), str(hold.previous_us)]
        with contextlib.suppress(RedisUnavailable):  # counted by the runner
            await self.runner.submit([h.key for h in held], args)

    def _abandoned(self, upstream: str, call: Call, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        outcome = parse_reply(future.result(), call.limits, call.keys)
        decision = decision_of(upstream, outcome, "redis")
        if decision.holds:
            task = asyncio.get_running_loop().create_task(self._release_holds(decision.holds))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fallback(
        self, upstream: str, policies: Sequence[RatePolicy], account: str, user: str | None
    ) -> Decision:
        mode = self._config.on_error
        enforced = [p for p in policies if not p.shadow]
        if mode == "local" or not enforced:
            # Without an enforced policy only a cool-down known here can hold the call.
            return self._local.decide(upstream, policies if mode == "local" else (), account, user)
        if mode == "open":
            record_open(self._metrics, upstream, enforced)
            return ALLOW
        return Decision(
            allowed=False,
            unavailable=True,
            detail="the rate limiter cannot reach Redis (redis.on_error: closed)",
        )

    def _failed(self, exc: RedisUnavailable) -> None:
        redis_failed(exc, self._metrics)
        if not self._breaker.is_open:
            log.warning(
                "redis_unavailable",
                error=str(exc),
                on_error=self._config.on_error,
                probe_interval=self._config.probe_interval,
            )
        self._breaker.trip()

    async def _probe(self) -> None:
        """Redis answers and has the script; then what this process reserved
        in memory meanwhile is handed to Redis, so that no replica's queued
        calls are forgotten when the shared limits resume."""
        self._count_fallback_time()  # the counter moves during a long outage too
        try:
            await within(self._ping_and_load(), self._config.timeout, self._clock)
        except REDIS_ERRORS as exc:
            raise RedisUnavailable(redis_failed(exc, self._metrics)) from exc
        seeds = [
            self.runner.submit((key,), ["seed", backlog]) for key, backlog in self._local.backlogs()
        ]
        results = await asyncio.gather(*seeds, return_exceptions=True)
        if any(isinstance(r, BaseException) for r in results):
            raise RedisUnavailable("seeding failed")  # counted by the runner

    def _count_fallback_time(self) -> None:
        if self._fallback_since is not None:
            now = time.monotonic()
            self._metrics.fallback_seconds.inc(now - self._fallback_since)
            self._fallback_since = now

    async def _ping_and_load(self) -> None:
        await self._redis.ping()
        await self._redis.script_load(SCRIPT)

    def _changed(self, opened: bool) -> None:
        self._count_fallback_time()
        self._fallback_since = time.monotonic() if opened else None
        if opened:
            self._metrics.circuit_openings.labels("redis").inc()
        self._metrics.circuit_open.labels("redis").set(int(opened))
        self._metrics.limiter_backend.set(int(opened))
        if not opened:
            log.info("redis_recovered", detail="rate limits are shared through Redis again")


def create_limiter(
    config: RedisConfig,
    redis: RedisClient | None,
    metrics: Metrics,
    batch: bool | None = None,
    workers: int = 1,
) -> ManagedLimiter:
    """Redis when a client is configured; else the in-memory limiter, said at start-up.

    ``workers`` (``server.workers``) processes share this replica's quotas: in
    memory each takes ``1 / workers`` of them (``1 / (replicas × workers)`` on
    the Redis fallback), so that together they stay within them.
    """
    if redis is None:
        detail = "rate limits hold for this process only"
        if workers > 1:
            detail = f"rate limits hold for this replica, 1/{workers} in each of {workers} workers"
        log.info("limiter", backend="memory", detail=detail)
        return MemoryLimiter(metrics, config.key_prefix, share=workers)
    log.info("limiter", backend="redis", on_error=config.on_error, replicas=config.replicas)
    metrics.circuit_open.labels("redis").set(0)
    metrics.limiter_backend.set(0)
    return RedisLimiter(
        redis, config, metrics, config.batch if batch is None else batch, workers=workers
    )
