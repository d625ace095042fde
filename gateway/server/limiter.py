"""The limiter interface the proxy calls, and what every limiter shares (docs/contract.md §2).

Implementations: :class:`NoLimiter`; the in-memory GCRA
(``limiter_memory.py``, used without ``REDIS_URL`` and as the ``local``
fallback); the Redis GCRA (``limiter_redis.py``). The maths, key strings and
header rendering live in :mod:`gateway.core.quota`; this module turns their
:class:`~gateway.core.quota.Outcome` into a :class:`Decision`, metrics and
log lines.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.config import RatePolicy
from gateway.core.messages import Headers
from gateway.core.quota import (
    ALLOWED,
    COOLDOWN,
    REJECTED,
    Hold,
    Limit,
    Outcome,
    compile_limit,
    cooldown_key,
    holds,
    policy_key,
    ratelimit_headers,
    seconds,
)
from gateway.logs import get_logger
from gateway.metrics import Metrics, child

log = get_logger("gateway.ratelimit")
# How often a delayed call checks that its caller is still connected.
PRESENCE_POLL = 0.05


@dataclass(frozen=True)
class Decision:
    allowed: bool
    delay: float = 0.0  # seconds to wait before sending (delay mode; slot reserved)
    retry_after: float = 0.0  # on refusal
    policy: str | None = None  # the policy that refused (or "cooldown")
    headers: Headers = ()  # RateLimit-Policy / RateLimit fields for the reply
    detail: str = ""
    unavailable: bool = False  # refused because the limiter backend is down (on_error=closed)
    holds: tuple[Hold, ...] = ()  # what release() gives back
    backend: str = ""  # "redis" | "memory": where the holds live


ALLOW = Decision(allowed=True)


class Limiter(Protocol):
    async def acquire(
        self,
        upstream: str,
        policies: Sequence[RatePolicy],
        account: str,
        user: str | None,
    ) -> Decision: ...

    async def release(self, upstream: str, decision: Decision) -> None:
        """Give back a reserved slot that was not used (caller left while waiting)."""
        ...

    async def cooldown(self, upstream: str, account: str, seconds: float) -> None:
        """Upstream pushback: hold every replica's calls for this account."""
        ...

    async def cooldown_left(self, upstream: str, account: str) -> float:
        """Seconds left of this account's cool-down (0: none), checked after a
        delayed call's wait: a cool-down may have been put meanwhile."""
        ...


class ManagedLimiter(Limiter, Protocol):
    """A limiter with a life cycle, built in the app's cleanup context."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def status(self) -> str:
        """One line for ``/readyz``."""
        ...


class NoLimiter:
    async def acquire(
        self,
        upstream: str,
        policies: Sequence[RatePolicy],
        account: str,
        user: str | None,
    ) -> Decision:
        return ALLOW

    async def release(self, upstream: str, decision: Decision) -> None:
        return None

    async def cooldown(self, upstream: str, account: str, seconds: float) -> None:
        return None

    async def cooldown_left(self, upstream: str, account: str) -> float:
        return 0.0


@functools.lru_cache(maxsize=1024)
def _compiled(policy: RatePolicy, share: int) -> Limit:
    return compile_limit(policy, share)


@dataclass(frozen=True)
class Call:
    """One call's limits and the keys they are kept under."""

    limits: tuple[Limit, ...]
    keys: tuple[str, ...]
    cooldown: str


def plan(
    prefix: str,
    upstream: str,
    policies: Sequence[RatePolicy],
    account: str,
    user: str | None,
    share: int = 1,
) -> Call:
    """``scope: user`` policies are keyed by ``X-Gateway-User`` and skipped without one.

    The same call (upstream, policies, account, user) recurs: its keys are built
    once (an LRU over bounded config values and the accounts and users in use)."""
    return _plan(prefix, upstream, tuple(policies), account, user, share)


@functools.lru_cache(maxsize=4096)
def _plan(
    prefix: str,
    upstream: str,
    policies: tuple[RatePolicy, ...],
    account: str,
    user: str | None,
    share: int,
) -> Call:
    chosen = [p for p in policies if p.scope != "user" or user is not None]
    limits = tuple(_compiled(p, share) for p in chosen)
    keys = tuple(
        policy_key(prefix, upstream, account, p.name, user if p.scope == "user" else None)
        for p in chosen
    )
    return Call(limits, keys, cooldown_key(prefix, upstream, account))


def decision_of(upstream: str, outcome: Outcome, backend: str) -> Decision:
    headers = ratelimit_headers(outcome)
    if outcome.allowed:
        return Decision(
            allowed=True,
            delay=seconds(outcome.wait_us),
            headers=headers,
            holds=holds(outcome),
            backend=backend,
        )
    retry = seconds(outcome.retry_us)
    if outcome.decider == COOLDOWN:
        detail = f"{upstream} asked the gateway to pause calls for this account"
    else:
        detail = f"the gateway's quota {outcome.decider!r} for this {upstream} account is used up"
    return Decision(
        allowed=False,
        retry_after=retry,
        policy=outcome.decider,
        headers=headers,
        detail=f"{detail}; retry in {retry:g}s",
        backend=backend,
    )


def record(metrics: Metrics, upstream: str, outcome: Outcome, decision: Decision) -> None:
    """``gateway_ratelimit_decisions_total`` per enforced policy (a refused call
    counts only for the policy that refused it, or ``cooldown``), the delay
    histogram, and shadow verdicts, which are logged when they would refuse."""
    counter = metrics.ratelimit_decisions
    enforced = False
    for p in outcome.policies:
        if p.limit.shadow:
            child(metrics.ratelimit_shadow, upstream, p.limit.name, p.verdict).inc()
            if p.verdict == REJECTED:
                log.warning(
                    "ratelimit_shadow_refusal",
                    upstream=upstream,
                    policy=p.limit.name,
                    enforced=False,
                    call_allowed=outcome.allowed,
                )
            continue
        enforced = True
        if outcome.allowed or p.verdict == REJECTED:
            child(counter, upstream, p.limit.name, p.verdict).inc()
    if outcome.decider == COOLDOWN:
        child(counter, upstream, COOLDOWN, REJECTED).inc()
    if outcome.allowed and (enforced or decision.delay > 0):
        child(metrics.ratelimit_delay, upstream).observe(decision.delay)


def record_open(metrics: Metrics, upstream: str, policies: Sequence[RatePolicy]) -> None:
    """``on_redis_error: open``: every enforced policy lets the call through."""
    for p in policies:
        if not p.shadow:
            metrics.ratelimit_decisions.labels(upstream, p.name, ALLOWED).inc()


async def wait_for_slot(delay: float, caller_gone: Callable[[], bool]) -> None:
    """Sleep ``delay`` seconds for a reserved slot, raising ``CancelledError``
    as soon as the caller has disconnected, so that the proxy gives the slot
    back (aiohttp does not cancel handlers on disconnect by default)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + delay
    while True:
        left = deadline - loop.time()
        if left <= 0:
            return
        await asyncio.sleep(min(left, PRESENCE_POLL))
        if caller_gone():
            log.info("ratelimit_caller_left", delay=round(delay, 3), left=round(left, 3))
            raise asyncio.CancelledError("the caller disconnected while waiting for its slot")


def hold_budget(policies: Sequence[RatePolicy], user: str | None) -> float:
    """How long in all a call may be held: the smallest ``max_delay`` of the
    enforced ``delay`` policies that apply; 0 when a ``reject`` one applies or
    none does (such calls are refused during a cool-down, never held)."""
    applied = [p for p in policies if not p.shadow and (p.scope != "user" or user is not None)]
    if not applied or any(p.on_exceed != "delay" for p in applied):
        return 0.0
    return min(p.max_delay for p in applied)


async def wait_out(
    limiter: Limiter,
    upstream: str,
    account: str,
    policies: Sequence[RatePolicy],
    user: str | None,
    decision: Decision,
    caller_gone: Callable[[], bool],
) -> Decision | None:
    """Wait for a delayed call's slot, then make sure no cool-down was put on
    the account meanwhile (an upstream 429 to another call): one ``check``.

    While one runs, the slot is given back and the call queued again behind
    the cool-down (a fresh decision, so the held calls stay spaced out instead
    of leaving together when it ends), if its total wait stays within
    :func:`hold_budget`; else it is refused: the returned refusal is a 429 with
    ``Retry-After`` = the cool-down left. ``None``: send now. The reserved slot
    is given back when the caller leaves (``CancelledError`` propagates).
    """
    waited, budget = 0.0, hold_budget(policies, user)
    while True:
        try:
            await wait_for_slot(decision.delay, caller_gone)
            waited += decision.delay
            left = await limiter.cooldown_left(upstream, account)
        except asyncio.CancelledError:
            await limiter.release(upstream, decision)
            raise
        if left <= 0:
            return None
        await limiter.release(upstream, decision)
        if waited + left <= budget:
            decision = await limiter.acquire(upstream, policies, account, user)
            if decision.allowed and waited + decision.delay <= budget:
                continue
            await limiter.release(upstream, decision)
        retry = seconds(math.ceil(left * 1_000_000))
        log.info("ratelimit_cooldown_after_wait", upstream=upstream, waited=round(waited, 3))
        return Decision(
            allowed=False,
            retry_after=retry,
            policy=COOLDOWN,
            headers=decision.headers,
            detail=f"{upstream} asked the gateway to pause calls for this account; "
            f"retry in {retry:g}s",
        )
