"""The limiter interface the proxy calls, and the no-op used when no policy applies.

The real limiters (Redis GCRA, in-memory fallback) implement :class:`Limiter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.config import RatePolicy
from gateway.core.messages import Headers


@dataclass(frozen=True)
class Decision:
    allowed: bool
    delay: float = 0.0  # seconds to wait before sending (delay mode; slot reserved)
    retry_after: float = 0.0  # on refusal
    policy: str | None = None  # the policy that decided (refused, delayed or the tightest)
    headers: Headers = ()  # RateLimit-Policy / RateLimit fields for the reply
    detail: str = ""
    unavailable: bool = False  # refused because the limiter backend is down (on_error=closed)


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
