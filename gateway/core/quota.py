"""Quota maths: GCRA, key strings, RateLimit header rendering (docs/contract.md §2).

Pure: no I/O and no clock. Time is passed in as integer **microseconds**, the
unit the Lua script (``gateway/lua/gcra.lua``) computes in from Redis ``TIME``.
:func:`evaluate` is the reference the script mirrors line for line; the
in-memory limiter runs it directly.

GCRA (the Generic Cell Rate Algorithm, as in go-redis/redis_rate) keeps one
number per key, the *theoretical arrival time* ``tat``. With emission interval
``T = period / limit`` and burst ``b``, a call sent at time ``s`` conforms iff
``s >= tat - (b - 1) * T``; sending it moves ``tat`` to ``max(tat, s) + T``.
So ``b`` calls may go at once, then one per ``T``. A call may be checked
against several policies: it is sent at the earliest ``s`` that conforms to
all of them, and every one of them is charged for that ``s``, so that the
spacing holds for whichever key is tightest.

Header fields follow the IETF httpapi draft "RateLimit header fields for
HTTP" (draft-ietf-httpapi-ratelimit-headers-09, §3 ``RateLimit-Policy`` and
§4 ``RateLimit``): ``"per_account";q=5;w=1`` and ``"per_account";r=4;t=1``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

US = 1_000_000
DELAY, REJECT = "delay", "reject"
ALLOWED, DELAYED, REJECTED = "allowed", "delayed", "rejected"
COOLDOWN = "cooldown"  # the decider when an upstream cool-down refused the call
_VERDICTS = (ALLOWED, DELAYED, REJECTED)  # the script's 0, 1, 2


class PolicyLike(Protocol):
    """What :func:`compile_limit` reads (``gateway.config.RatePolicy`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def limit(self) -> int: ...
    @property
    def period(self) -> float: ...
    @property
    def burst(self) -> int: ...
    @property
    def on_exceed(self) -> str: ...
    @property
    def max_delay(self) -> float: ...
    @property
    def shadow(self) -> bool: ...
    @property
    def scope(self) -> str: ...
    @property
    def margin(self) -> float: ...


@dataclass(frozen=True)
class Limit:
    """A policy compiled to the integers the script takes."""

    name: str
    interval_us: int  # T, rounded up: never faster than the policy
    burst: int
    reject: bool  # on_exceed: reject (else delay)
    max_delay_us: int
    shadow: bool
    per_user: bool  # scope: user
    quota: int  # for RateLimit-Policy: q units per w seconds
    window: int


def compile_limit(policy: PolicyLike, share: int = 1) -> Limit:
    """Compile ``policy``; ``share > 1`` gives this process 1/share of it (the
    ``local`` fallback, one share per replica). The policy's ``margin`` seconds
    are added to each period when pacing, so that network jitter cannot squeeze
    ``limit + 1`` arrivals into one upstream window; the advertised quota
    (``q``/``w``) stays the policy's own."""
    period = (policy.period + policy.margin) * share
    window = max(1, math.ceil(policy.period * share - 1e-9))
    return Limit(
        name=policy.name,
        interval_us=max(1, math.ceil(period * US / policy.limit)),
        burst=max(1, policy.burst // share),
        reject=policy.on_exceed == REJECT,
        max_delay_us=round(policy.max_delay * US),
        shadow=policy.shadow,
        per_user=policy.scope == "user",
        quota=max(1, math.floor(policy.limit * window / (policy.period * share) + 1e-9)),
        window=window,
    )


# --- keys --------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)
def _part(value: str) -> str:
    """Percent-encode everything but ``[A-Za-z0-9_.~-@+=]``: no ``:``, ``{``,
    ``}`` or ``!`` survives, so parts can never run into each other."""
    return quote(value, safe="@+=")


def key_tag(prefix: str, upstream: str, account: str) -> str:
    """``gw:{buzzstream:consumer-key}``: the Redis Cluster hash tag of a call.

    Every key of one call starts with it, so they share one slot and one
    script can touch them all.
    """
    return f"{prefix}:{{{_part(upstream)}:{_part(account)}}}"


def policy_key(prefix: str, upstream: str, account: str, policy: str, user: str | None) -> str:
    """``gw:{up:acct}:per_account``; a ``scope: user`` policy adds ``:<user>``."""
    key = f"{key_tag(prefix, upstream, account)}:{_part(policy)}"
    return key if user is None else f"{key}:{_part(user)}"


def cooldown_key(prefix: str, upstream: str, account: str) -> str:
    """``gw:{up:acct}:!cooldown``; ``!`` never appears in an encoded policy name."""
    return f"{key_tag(prefix, upstream, account)}:!cooldown"


# --- the algorithm -----------------------------------------------------------


@dataclass(frozen=True)
class PolicyOutcome:
    """One policy's part in a decision."""

    limit: Limit
    key: str
    verdict: str  # ALLOWED | DELAYED | REJECTED: what this policy said about the call
    committed: bool  # its key was charged
    stored_us: int  # the value the key held before (0: none)
    tat_us: int  # the value it holds after (= max(stored, now) when not charged)


@dataclass(frozen=True)
class Outcome:
    allowed: bool
    wait_us: int  # allowed: how long to wait before sending (the slot is reserved)
    retry_us: int  # refused: when a retry may succeed
    decider: str | None  # refused: the refusing policy, or COOLDOWN
    now_us: int
    policies: tuple[PolicyOutcome, ...]


def evaluate(
    now: int,
    limits: Sequence[Limit],
    keys: Sequence[str],
    stored: Sequence[int],
    cooldown_until: int,
) -> Outcome:
    """Decide one call against ``limits`` (key values ``stored``, 0 = absent).

    - Enforced policies fix the send time ``s``: the earliest time that
      conforms to all of them and is not before an upstream cool-down.
    - Refused, with nothing written, when a ``reject`` policy does not conform
      now, when ``s - now`` exceeds a ``delay`` policy's ``max_delay``, or when
      a cool-down is running and no enforced ``delay`` policy may hold the call
      (no policy at all, or a ``reject`` one applies). When the cool-down alone
      outlasts a ``delay`` policy's ``max_delay``, the decider is
      :data:`COOLDOWN`, not the policy (which is marked refused only if its own
      queue also outlasts ``max_delay``).
    - Shadow policies never change the decision. When the call goes, each one
      is charged unless it alone would have refused the call.
    """
    tats = [max(v, now) for v in stored]
    allow_at = [t - (lim.burst - 1) * lim.interval_us for t, lim in zip(tats, limits, strict=True)]
    enforced = [i for i, lim in enumerate(limits) if not lim.shadow]
    cooling = cooldown_until > now
    send = max([now, cooldown_until, *(allow_at[i] for i in enforced)])
    wait = send - now

    decider: str | None = None
    retry = 0
    refused = [False] * len(limits)
    if cooling and (not enforced or any(limits[i].reject for i in enforced)):
        decider, retry = COOLDOWN, cooldown_until - now
    for i in enforced:
        lim = limits[i]
        over = allow_at[i] - now if lim.reject else wait - lim.max_delay_us
        if over > 0:
            if not lim.reject and cooldown_until - now > lim.max_delay_us:
                # The cool-down alone is longer than this policy may hold a
                # call: the cool-down refuses it; the policy only if its own
                # queue is too long as well.
                refused[i] = allow_at[i] - now > lim.max_delay_us
                decider = decider or COOLDOWN
            else:
                refused[i] = True
                decider = decider or lim.name
            retry = max(retry, over)

    allowed = decider is None
    out = []
    for i, lim in enumerate(limits):
        own = allow_at[i] - now  # the wait this policy alone asks for
        if lim.shadow:
            refuse = own > 0 if lim.reject else own > lim.max_delay_us
            verdict = REJECTED if refuse else DELAYED if own > 0 else ALLOWED
            charge = allowed and not refuse
        else:
            late = own > 0 or (allowed and wait > 0)
            verdict = REJECTED if refused[i] else DELAYED if late else ALLOWED
            charge = allowed
        after = max(tats[i], send) + lim.interval_us if charge else tats[i]
        out.append(PolicyOutcome(lim, keys[i], verdict, charge, stored[i], after))
    return Outcome(
        allowed=allowed,
        wait_us=wait if allowed else 0,
        retry_us=0 if allowed else retry,
        decider=decider,
        now_us=now,
        policies=tuple(out),
    )


@functools.lru_cache(maxsize=1024)
def script_args(limits: tuple[Limit, ...]) -> str:
    """The ``acquire`` argument of ``gcra.lua``: space-separated integers."""
    args = [len(limits)]
    for lim in limits:
        args += [lim.interval_us, lim.burst, int(lim.reject), lim.max_delay_us, int(lim.shadow)]
    return " ".join(map(str, args))


def parse_reply(reply: bytes | str, limits: Sequence[Limit], keys: Sequence[str]) -> Outcome:
    """The script's fixed-shape answer, space-separated integers, as an :class:`Outcome`::

    allowed wait_or_retry_us decider(-1 none, 0 cool-down, i policy i) now_us
    then per policy: verdict(0/1/2) charged(0/1) stored_us tat_us
    """
    values = [int(v) for v in reply.split()]
    allowed, amount, decider, now = values[:4]
    out = []
    for i, lim in enumerate(limits):
        verdict, charged, stored, tat = values[4 + 4 * i : 8 + 4 * i]
        out.append(PolicyOutcome(lim, keys[i], _VERDICTS[verdict], bool(charged), stored, tat))
    name = None if decider < 0 else COOLDOWN if decider == 0 else limits[decider - 1].name
    return Outcome(
        allowed=bool(allowed),
        wait_us=amount if allowed else 0,
        retry_us=0 if allowed else amount,
        decider=name,
        now_us=now,
        policies=tuple(out),
    )


@dataclass(frozen=True)
class Hold:
    """A charged key, to give back if the call is abandoned before it is sent."""

    key: str
    expected_us: int  # what the call wrote
    previous_us: int  # what was there before


def holds(outcome: Outcome) -> tuple[Hold, ...]:
    return tuple(Hold(p.key, p.tat_us, p.stored_us) for p in outcome.policies if p.committed)


def release_value(now: int, current: int, hold: Hold) -> int | None:
    """What to store when giving ``hold`` back: ``None`` to leave the key alone.

    Only the last reservation can be taken back (``current == expected``):
    moving a reservation out of the middle of a queue would let the next call
    take a slot between calls whose times are already fixed, and squeeze more
    than the quota into one window. ``0`` means delete the key.
    """
    if current != hold.expected_us:
        return None
    return hold.previous_us if hold.previous_us > now else 0


def extend_cooldown(now: int, current: int, seconds: float) -> int:
    """A cool-down ends at the later of the running one and ``now + seconds``."""
    return max(current, now + max(0, math.ceil(seconds * US)))


# --- headers -----------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _sf_string(name: str) -> str:
    """An RFC 8941 §3.3.3 sf-string: printable ASCII, ``"`` and ``\\`` escaped."""
    text = "".join(c for c in name if " " <= c <= "~")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def remaining(p: PolicyOutcome, now: int) -> int:
    """``r``: the quota units left in the window after this call.

    Each unit of backlog (``tat - now``, in ``T``) is a unit used. A ``reject``
    policy cannot take more than its burst right now; a refused call leaves 0.
    """
    if p.verdict == REJECTED and not p.limit.shadow:
        return 0
    used = math.ceil(max(0, p.tat_us - now) / p.limit.interval_us)
    cap = min(p.limit.quota, p.limit.burst) if p.limit.reject else p.limit.quota
    return max(0, cap - used)


def ratelimit_headers(outcome: Outcome) -> tuple[tuple[str, str], ...]:
    """``RateLimit-Policy`` and ``RateLimit`` for the enforced policies of a call.

    Shadow policies are not advertised: they are not enforced. ``t`` is the
    whole seconds until the key's backlog has drained (draft §4.2 "reset").
    """
    shown = [p for p in outcome.policies if not p.limit.shadow]
    if not shown:
        return ()
    policy = ", ".join(f"{_sf_string(p.limit.name)};q={p.limit.quota};w={p.limit.window}"
                       for p in shown)  # fmt: skip
    state = ", ".join(
        f"{_sf_string(p.limit.name)};r={remaining(p, outcome.now_us)};"
        f"t={math.ceil(max(0, p.tat_us - outcome.now_us) / US)}"
        for p in shown
    )
    return (("RateLimit-Policy", policy), ("RateLimit", state))


def seconds(us: int) -> float:
    """Microseconds to seconds, rounded up to the millisecond (never early)."""
    return math.ceil(us / 1000) / 1000
