"""When to send a call again: the retry policy, full-jitter back-off and the retry budget.

Pure: time and randomness are passed in. The edge (``server/retry.py``) sleeps,
passes the quota again and re-signs each attempt.

A call may be sent again when (and only when):

- it failed **before a single byte was written** (the connection was refused
  or could not be opened): any method, since the upstream saw nothing;
- or its method is one of ``methods`` (default GET and HEAD), its body can be
  sent again (buffered or empty), and the upstream answered one of
  ``statuses`` (default 502, 503, 504) or 429 with a ``Retry-After``.

Never more than ``attempts`` attempts in all, never a back-off or a
``Retry-After`` that would end past the call's ``deadline``, and never more
resends than the upstream's :class:`RetryBudget` allows.

Back-off is exponential with full jitter (AWS Architecture Blog, "Exponential
Backoff And Jitter"): before resend *n* (1, 2...) sleep
``uniform(0, min(backoff_max, backoff_base * 2**(n-1)))``; a ``Retry-After``
is honoured (the wait is at least that long, never earlier).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

CONNECT_FAILED = "connect_failed"


@dataclass(frozen=True)
class RetryPolicy:
    methods: frozenset[str] = frozenset({"GET", "HEAD"})
    attempts: int = 3  # in all, the first one included
    statuses: frozenset[int] = frozenset({502, 503, 504})
    retry_429: bool = True  # a 429 that says when (Retry-After) is waited out and resent
    backoff_base: float = 0.1
    backoff_max: float = 2.0
    deadline: float = 10.0  # seconds from the first attempt; no resend would end later
    budget_ratio: float = 0.2  # resends per call over the window...
    budget_window: float = 10.0
    budget_min: int = 3  # ...but at least this many resends per window (quiet upstreams)


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    reason: str = ""  # the metric label: connect_failed, 429, 502, 503, 504
    delay: float = 0.0
    refused: str = ""  # why not, when there was a reason to: attempts, deadline


def backoff(policy: RetryPolicy, resend: int, rng: Callable[[], float]) -> float:
    """Full jitter: a uniform draw below the exponential ceiling."""
    return rng() * min(policy.backoff_max, policy.backoff_base * 2.0 ** (resend - 1))


def decide(
    policy: RetryPolicy,
    *,
    method: str,
    attempt: int,
    elapsed: float,
    rng: Callable[[], float],
    unsent: bool = False,
    status: int | None = None,
    retry_after: float | None = None,
    replayable: bool = True,
) -> RetryDecision:
    """Whether attempt ``attempt`` (1 = the first) that just ended is followed by another."""
    if unsent:
        reason = CONNECT_FAILED
    elif status is None or method not in policy.methods or not replayable:
        return RetryDecision(False)
    elif status in policy.statuses:
        reason = str(status)
    elif status == 429 and policy.retry_429 and retry_after is not None:
        reason = "429"
    else:
        return RetryDecision(False)
    if attempt >= policy.attempts:
        return RetryDecision(False, reason, refused="attempts")
    delay = backoff(policy, attempt, rng)
    if retry_after is not None:
        delay = max(delay, retry_after)
    if elapsed + delay >= policy.deadline:
        return RetryDecision(False, reason, delay, refused="deadline")
    return RetryDecision(True, reason, delay)


@dataclass
class RetryBudget:
    """Resends at most ``budget_ratio`` of the calls over a sliding ``budget_window``
    (but ``budget_min`` per window in any case), so an outage does not multiply
    the load on the upstream by ``attempts``."""

    policy: RetryPolicy
    _calls: deque[float] = field(default_factory=deque)
    _resends: deque[float] = field(default_factory=deque)

    def on_call(self, now: float) -> None:
        self._calls.append(now)
        self._trim(now)

    def spend(self, now: float) -> bool:
        """Take one resend from the budget; False when it is used up."""
        self._trim(now)
        allowed = max(self.policy.budget_min, self.policy.budget_ratio * len(self._calls))
        if len(self._resends) + 1 > allowed:
            return False
        self._resends.append(now)
        return True

    def _trim(self, now: float) -> None:
        horizon = now - self.policy.budget_window
        for window in (self._calls, self._resends):
            while window and window[0] <= horizon:
                window.popleft()
