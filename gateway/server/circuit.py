"""A circuit breaker that probes its dependency instead of retrying per request.

Closed: calls go to the dependency. The first failure opens it: calls go
elsewhere at once (the limiter's ``on_error`` answer), and one background task
runs ``probe`` every ``interval`` seconds. The first probe that succeeds closes
the circuit again. So a dead Redis costs one probe per interval, not one
timeout per request, and recovery needs no operator.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from gateway.server.tasks import stop_task


class CircuitBreaker:
    def __init__(
        self,
        probe: Callable[[], Awaitable[None]],
        interval: float,
        on_change: Callable[[bool], None],
    ) -> None:
        self._probe = probe
        self._interval = interval
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None
        self.opened_at: float | None = None  # wall clock, for /readyz
        self.failures = 0  # consecutive failures, probes included

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def trip(self) -> None:
        """Record a failure; open the circuit and start probing if it was closed."""
        self.failures += 1
        if self.opened_at is not None:
            return
        self.opened_at = time.time()
        self._on_change(True)
        self._task = asyncio.get_running_loop().create_task(self._probe_until_closed())

    async def _probe_until_closed(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._probe()
            except Exception:  # the probe's own failure: stay open, try again later
                self.failures += 1
                continue
            self.opened_at, self.failures, self._task = None, 0, None
            self._on_change(False)
            return

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)
