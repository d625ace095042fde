"""The in-memory limiter: the same GCRA as the Redis script, per process.

Used when ``REDIS_URL`` is unset (the limits then hold for this process only,
which start-up logs say), and as the ``local`` answer to Redis failing
(``redis.on_error``), where each process takes ``1 / redis.replicas`` of every
quota so that the replicas together stay within it. It runs
:func:`gateway.core.quota.evaluate` directly, so the two backends cannot
drift apart; the clock is the monotonic clock, in microseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gateway.config import RatePolicy
from gateway.core.quota import (
    Outcome,
    cooldown_key,
    evaluate,
    extend_cooldown,
    release_value,
    seconds,
)
from gateway.metrics import Metrics
from gateway.server.limiter import ALLOW, Decision, decision_of, plan, record

# Forget keys whose backlog has drained every this many decisions.
PURGE_EVERY = 1024


def monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class MemoryLimiter:
    def __init__(
        self,
        metrics: Metrics,
        prefix: str = "gw",
        share: int = 1,
        clock: Callable[[], int] = monotonic_us,
    ) -> None:
        self._metrics = metrics
        self._prefix = prefix
        self._share = share
        self._clock = clock
        self._values: dict[str, int] = {}  # TATs and cool-down ends, by key
        self._count = 0

    def status(self) -> str:
        if self._share > 1:  # server.workers processes split this replica's quotas
            return f"memory (limits are per process: 1/{self._share} of each in this one)"
        return "memory (limits are per process)"

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def acquire(
        self,
        upstream: str,
        policies: Sequence[RatePolicy],
        account: str,
        user: str | None,
    ) -> Decision:
        return self.decide(upstream, policies, account, user)

    def decide(
        self,
        upstream: str,
        policies: Sequence[RatePolicy],
        account: str,
        user: str | None,
    ) -> Decision:
        if not policies:
            # No policy applies: only a cool-down can hold the call. Without one it
            # goes, with no RateLimit fields and no decision to count (as evaluate()
            # would decide), at a dict lookup's cost instead of a whole decision's.
            until = self._values.get(cooldown_key(self._prefix, upstream, account), 0)
            if until <= self._clock():
                return ALLOW
        call = plan(self._prefix, upstream, policies, account, user, self._share)
        now = self._clock()
        values = self._values
        outcome = evaluate(
            now,
            call.limits,
            call.keys,
            [values.get(k, 0) for k in call.keys],
            values.get(call.cooldown, 0),
        )
        for p in outcome.policies:
            if p.committed:
                values[p.key] = p.tat_us
        self._tick(now)
        decision = decision_of(upstream, outcome, "memory")
        record(self._metrics, upstream, outcome, decision)
        return decision

    async def release(self, upstream: str, decision: Decision) -> None:
        now = self._clock()
        for hold in decision.holds:
            value = release_value(now, self._values.get(hold.key, 0), hold)
            if value == 0:
                self._values.pop(hold.key, None)
            elif value is not None:
                self._values[hold.key] = value

    async def cooldown(self, upstream: str, account: str, seconds: float) -> None:
        self.note_cooldown(upstream, account, seconds)
        self._metrics.cooldowns.labels(upstream).inc()

    async def cooldown_left(self, upstream: str, account: str) -> float:
        return self.cooldown_left_here(upstream, account)

    def cooldown_left_here(self, upstream: str, account: str) -> float:
        """The cool-down this process knows of (its own, or mirrored)."""
        key = plan(self._prefix, upstream, (), account, None).cooldown
        return seconds(max(0, self._values.get(key, 0) - self._clock()))

    def note_cooldown(self, upstream: str, account: str, seconds: float) -> None:
        """Remember a cool-down here without counting it (the Redis limiter
        counts it once and keeps a copy for its fallback)."""
        key = plan(self._prefix, upstream, (), account, None).cooldown
        self._values[key] = extend_cooldown(self._clock(), self._values.get(key, 0), seconds)

    def mirror(self, outcome: Outcome) -> None:
        """Copy what Redis just charged (Redis time, moved onto this clock), so
        that a fallback starts from the shared queue instead of from empty."""
        now = self._clock()
        offset = now - outcome.now_us
        values = self._values
        for p in outcome.policies:
            if p.committed and p.tat_us + offset > values.get(p.key, 0):
                values[p.key] = p.tat_us + offset
        self._tick(now)

    def backlogs(self) -> list[tuple[str, int]]:
        """Every live key with how far ahead of now it reaches (microseconds):
        what the Redis limiter seeds Redis with when it comes back."""
        now = self._clock()
        return [(k, v - now) for k, v in self._values.items() if v > now]

    def _tick(self, now: int) -> None:
        self._count += 1
        if self._count % PURGE_EVERY == 0:
            self._values = {k: v for k, v in self._values.items() if v > now}
