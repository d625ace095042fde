"""The gateway's own public paths, in one table (docs/contract.md §1, "Reserved paths").

They are routed before the catch-all ``/{upstream}/{path}``, so their first
segments are names no upstream may take (the config refuses them). The table
is read by the routes (``server/health.py``, ``server/problem_pages.py``,
``server/oauth_routes.py``), by caller authentication (which paths a caller
token does not guard), by the access log and tracing (which paths they skip)
and by the config validation (``gateway/config.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Guard(Enum):
    """Who may call a reserved path when ``callers.tokens`` is set."""

    CALLER = "caller"  # a caller token, like a proxied call
    OPEN = "open"  # anyone: probes, a browser back from an upstream, public documentation


@dataclass(frozen=True)
class ReservedPath:
    route: str  # the aiohttp route; ``{upstream}`` is an upstream's name
    guard: Guard
    quiet: bool = False  # no access-log line, no request metrics, no span (probes, scrapes)
    prefix: bool = False  # the route and everything below it

    @property
    def pattern(self) -> re.Pattern[str]:
        body = re.escape(self.route).replace(re.escape("{upstream}"), "[^/]+")
        # \Z, not $: `$` also matches before a final newline, and "/healthz\n" (a
        # decoded %0A) is not /healthz: aiohttp routes it to the proxy's catch-all.
        return re.compile(f"^{body}(?:/.*)?\\Z" if self.prefix else f"^{body}\\Z", re.DOTALL)


HEALTHZ = ReservedPath("/healthz", Guard.OPEN, quiet=True)
READYZ = ReservedPath("/readyz", Guard.OPEN, quiet=True)
METRICS = ReservedPath("/metrics", Guard.OPEN, quiet=True)
# 3-legged onboarding: the internal app calls start; the user's browser comes
# back to the callback without a caller token (a one-time handle guards it).
ONBOARDING_START = ReservedPath("/oauth/{upstream}/start", Guard.CALLER)
ONBOARDING_CALLBACK = ReservedPath("/oauth/{upstream}/callback", Guard.OPEN)
PROBLEM_PAGES = ReservedPath("/problems", Guard.OPEN, prefix=True)

TABLE: tuple[ReservedPath, ...] = (
    HEALTHZ,
    READYZ,
    METRICS,
    ONBOARDING_START,
    ONBOARDING_CALLBACK,
    PROBLEM_PAGES,
)
# The first path segments the table takes: no upstream may be named one of them.
RESERVED_NAMES = frozenset(p.route.split("/")[1] for p in TABLE)
# Probes and scrapes: exact paths, answered without a log line, metrics or a span.
QUIET = frozenset(p.route for p in TABLE if p.quiet)
_OPEN = tuple(p.pattern for p in TABLE if p.guard is Guard.OPEN)


def is_open(path: str) -> bool:
    """True when ``path`` is served without a caller token (health, a browser
    callback, a problem type's page)."""
    return any(pattern.match(path) for pattern in _OPEN)


def onboarding_path(route: ReservedPath, upstream: str) -> str:
    """``/oauth/<upstream>/start`` or ``.../callback``."""
    return route.route.replace("{upstream}", upstream)
