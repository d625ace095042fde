"""Two gateway processes share one Redis and pace one BuzzStream account (issue 4).

Real processes on loopback: a redis-server, the stand-ins (their own process,
so no other test's calls sit in BuzzStream's rate window) and two gateways
started with the shipped config. The stand-in is the independent judge: it
suspends any call beyond 5 per second per user and records every arrival.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.harness import Gateway, Standins, gateway_env, launch_gateway, launch_standins

pytestmark = pytest.mark.e2e
CALLS = 30


@pytest.fixture(scope="module")
def own_standins() -> Iterator[Standins]:
    standins = launch_standins()
    yield standins
    standins.stop()


@pytest.fixture
def two_gateways(own_standins: Standins, redis_flushed: str) -> Iterator[list[Gateway]]:
    own_standins.reset()
    env = gateway_env(own_standins, redis_flushed)
    gateways = [launch_gateway(env), launch_gateway(env)]
    yield gateways
    for gw in gateways:
        gw.stop()


async def _burst(urls: list[str], n: int) -> list[tuple[int, dict[str, str]]]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one(i: int) -> tuple[int, dict[str, str]]:
            url = f"{urls[i % len(urls)]}/buzzstream/websites?offset={i}"
            async with session.get(url) as resp:
                await resp.read()
                return resp.status, dict(resp.headers)

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times))


def arrivals(seen: list[dict[str, Any]]) -> list[float]:
    return [float(s["arrived"]) for s in seen if s["path"] == "/v1/websites"]


def test_thirty_concurrent_calls_over_two_replicas_are_paced(
    two_gateways: list[Gateway], own_standins: Standins
) -> None:
    results = asyncio.run(_burst([gw.url for gw in two_gateways], CALLS))

    assert [status for status, _ in results] == [200] * CALLS
    assert all("RateLimit-Policy" in headers for _, headers in results)
    seen = own_standins.seen("buzzstream")
    times = arrivals(seen)
    assert len(times) == CALLS
    assert own_standins.stats("buzzstream").get("suspensions", 0) == 0
    assert all(s["extra"].get("suspended_steps", 0) == 0 for s in seen)
    peak = max_in_window(times)
    sustained = (CALLS - 1) / (max(times) - min(times))
    print(f"peak {peak}/s in any 1 s window, sustained {sustained:.2f} calls/s, 0 suspensions")
    assert peak <= 5
    assert sustained >= 4.0
