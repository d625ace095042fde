"""Timing a Redis round trip by Redis's time, not by the event loop's lag.

A plain ``asyncio.timeout(redis.timeout)`` expires whenever the loop is too
busy to run the code that reads Redis's answer: at 100% CPU a 50 ms timeout
fired while the answer sat unread in the socket, and the limiter's circuit
breaker opened against a healthy Redis (issue 10 item 13). Here, when the
deadline comes, the loop is checked: a deadline noticed *late* (one long
callback held the loop) or a loop whose one turn takes long (many calls' work
queued ahead of the answer's) shows that the gateway, not Redis, is slow, and
the deadline is pushed back by that much, as often as needed, up to a hard
bound (:func:`hard_timeout`). A deadline met by a free loop means Redis had not
answered: a real timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from gateway.server.tasks import stop_task

T = TypeVar("T")

# A timer noticed later than this after its deadline shows a busy loop.
LATE_AFTER = 0.005
# Turns of the loop taken at the deadline before judging.
TURNS = 5


def hard_timeout(timeout: float) -> float:
    """Whatever the loop's lag, a round trip fails after this (also redis-py's
    socket timeout): 20 times ``redis.timeout``, at least one second."""
    return max(1.0, 20 * timeout)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # a late failure of an abandoned call is not an error here


class LagClock:
    """How long this process's event loop was held from its timers, in all: a
    task that asks to wake every :data:`TICK` seconds adds up how late it wakes.
    Long callbacks, a saturated loop and the OS descheduling the process all
    show up, whenever they happen (before a command is even written, too)."""

    TICK = 0.01

    def __init__(self) -> None:
        self.held = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.TICK
            await asyncio.sleep(self.TICK)
            self.held += max(0.0, loop.time() - expected)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)


async def within(aw: Awaitable[T], seconds: float, clock: LagClock | None = None) -> T:
    """``aw``'s result, or ``TimeoutError`` once ``seconds`` have passed with the
    loop free to see the answer (or :func:`hard_timeout` in any case); ``aw``
    is then cancelled. ``clock`` (when running) counts the time the loop was
    held during the wait, wherever in it."""
    loop = asyncio.get_running_loop()
    future = asyncio.ensure_future(aw)
    started = loop.time()
    deadline = started + seconds
    hard = started + hard_timeout(seconds)
    mark = clock.held if clock is not None else 0.0
    try:
        while True:
            done, _ = await asyncio.wait({future}, timeout=max(0.0, deadline - loop.time()))
            if done:
                return future.result()
            now = loop.time()
            late = now - deadline  # one long callback held the loop past the deadline
            for _ in range(TURNS):  # a few turns of the loop: an answer already in the
                await asyncio.sleep(0)  # socket is read meanwhile, and they time the loop
                if future.done():
                    return future.result()
            turns = loop.time() - now
            held = 0.0
            if clock is not None:
                held, mark = clock.held - mark, clock.held
            lost = max(late, turns, held)
            if lost <= LATE_AFTER + seconds / 10 or now >= hard:
                raise TimeoutError  # the loop was free: Redis has not answered
            # The loop was held: give that time back, and look again.
            deadline = min(hard, loop.time() + lost)
    finally:
        if not future.done():
            future.cancel()
            future.add_done_callback(_retrieve)
