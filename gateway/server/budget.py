"""A bound on the request bytes the gateway holds in memory at once.

Bodies that must be signed (or rewritten) are read whole before they are sent;
``server.max_buffered_bytes`` bounds their sum over every call in flight. A
body is charged as it is read (all of it up front when ``Content-Length`` says
how much is coming) and given back when its call ends. A call that would go
over is refused with a 503 ``upstream_unavailable`` problem and
``Retry-After`` (``gateway_load_shed_total{reason="buffered_bytes"}``).
"""

from __future__ import annotations


class ByteBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        """Charge ``size`` bytes if they fit; False (nothing charged) if not."""
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used = max(0, self.used - size)
