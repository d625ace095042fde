"""The event loop the gateway runs on: uvloop's when it is installed (a dependency,
so always in the image and the venv), else asyncio's own.

uvloop's loop runs the same aiohttp code with less CPU per request (the commit
that made it the default gives the benchmark's before and after). ``gateway run``
uses :func:`run`; so does ``bench/``'s bare proxy, so that the two are compared on
the same loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when importable; ``None``: asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def loop_name() -> str:
    """``uvloop`` or ``asyncio``: what :func:`run` runs on (said at start-up)."""
    return "asyncio" if loop_factory() is None else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on :func:`loop_factory`'s loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
