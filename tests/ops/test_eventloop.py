"""The event loop: uvloop's (a dependency) for ``gateway run`` and the bench's bare proxy."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway import eventloop
from tests.harness import Standins, gateway_env, launch_gateway


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_run_runs_on_uvloop_when_installed() -> None:
    assert eventloop.loop_name() == "uvloop"  # a dependency: always installed
    assert eventloop.run(_loop_module()).startswith("uvloop")


@pytest.mark.e2e
def test_gateway_run_says_which_loop_it_runs_on(standins: Standins) -> None:
    gw = launch_gateway(gateway_env(standins))
    try:
        lines = [json.loads(line) for line in gw.logs().splitlines() if line.startswith("{")]
    finally:
        gw.stop()
    (started,) = [line for line in lines if line.get("event") == "started"]
    assert started["event_loop"] == "uvloop"
