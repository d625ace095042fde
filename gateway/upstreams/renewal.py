"""Two small tools every renewing auth needs: single-flight renewal and login back-off.

:class:`SingleFlight`: concurrent calls that saw the *same* stale credential wait
on one lock, and only the first performs the login; the others find the
credential already changed and simply replay (docs/upstreams.md: 100 concurrent
calls that meet an expired session cause one login).

:class:`Backoff`: after a refused or throttled login, no further login is tried
until the window ends. ``Retry-After`` is honoured when the upstream sends one;
otherwise the window doubles from ``base`` up to ``cap`` (bounded exponential).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any


class SingleFlight:
    """One renewal at a time for one credential holder."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def renew(
        self,
        stale: Any,
        current: Callable[[], Any],
        refresh: Callable[[], Awaitable[None]],
    ) -> bool:
        """Run ``refresh`` unless ``current()`` already differs from ``stale``.

        Returns True when this caller performed the refresh.
        """
        async with self._lock:
            if current() != stale:
                return False
            await refresh()
            return True


@dataclass
class Backoff:
    """When the next login may be tried. Times are seconds on the caller's clock."""

    base: float = 1.0
    cap: float = 60.0
    failures: int = 0
    until: float = 0.0
    reason: str = ""  # what the last failure was, to fail waiting callers alike

    def remaining(self, now: float) -> float:
        return max(0.0, self.until - now)

    def fail(self, now: float, reason: str, retry_after: float | None = None) -> float:
        """Record a failed login; returns the seconds before the next may be tried."""
        self.failures += 1
        if retry_after is not None and retry_after > 0:
            delay = retry_after
        else:
            delay = min(self.cap, self.base * 2 ** min(self.failures - 1, 30))
        self.until = now + delay
        self.reason = reason
        return delay

    def succeed(self) -> None:
        self.failures = 0
        self.until = 0.0
        self.reason = ""
