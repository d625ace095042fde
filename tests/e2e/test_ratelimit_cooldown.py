"""A cool-down put while calls wait for their delay slot (an upstream 429 to
another call) holds or refuses them after the wait: none is sent inside it.

In-process gateway app over loopback to the real stand-ins and a real Redis.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.server.app import create_app
from tests.conftest import assert_problem, make_config
from tests.e2e.test_ratelimit_edge import with_limits
from tests.harness import Standins
from tests.quota.conftest import policy

Client = TestClient[Any, Any]
PUSHBACK = "/bizzstream/__fault/text/429"  # the stand-in's 429, no Retry-After: 1 s


async def _run(client: Client, echoes: int) -> list[tuple[int, bytes]]:
    async def get(path: str) -> tuple[int, bytes]:
        resp = await client.get(path)
        return resp.status, await resp.read()

    first = asyncio.create_task(get(PUSHBACK))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(get(f"/bizzstream/__fault/echo?i={i}")) for i in range(echoes)]
    return await asyncio.gather(first, *rest)


async def test_delayed_calls_are_queued_again_behind_a_cooldown_put_meanwhile(
    aiohttp_client: Any, fresh_standins: Standins, redis_flushed: str
) -> None:
    p = policy("per_env", limit=5, period=1, burst=1, on_exceed="delay", max_delay=10)
    config = with_limits(make_config(fresh_standins, REDIS_URL=redis_flushed), "bizzstream", p)
    client = await aiohttp_client(create_app(config))
    results = await _run(client, 5)
    assert [status for status, _ in results] == [429] + [200] * 5
    seen = sorted(float(x["arrived"]) for x in fresh_standins.seen("bizzstream"))
    assert len(seen) == 6
    # slots were 0.2 s apart from the 429 on: all of them fell inside its 1 s cool-down
    assert all(t - seen[0] >= 0.95 for t in seen[1:]), seen
    # and they stay spaced out after it (slots 0.2 s apart) instead of leaving together.
    # Each gap may lose a wake-up's jitter on a loaded box (0.137 s seen under two busy
    # loops), the run as a whole keeps its pace; leaving together would be ~0 s gaps.
    assert all(b - a >= 0.1 for a, b in itertools.pairwise(seen[1:])), seen
    assert seen[-1] - seen[1] >= 0.7, seen


async def test_a_cooldown_beyond_max_delay_refuses_the_waiting_calls(
    aiohttp_client: Any, fresh_standins: Standins, redis_flushed: str
) -> None:
    p = policy("per_env", limit=5, period=1, burst=1, on_exceed="delay", max_delay=0.5)
    config = with_limits(make_config(fresh_standins, REDIS_URL=redis_flushed), "bizzstream", p)
    client = await aiohttp_client(create_app(config))
    results = await _run(client, 2)  # slots at +0.2 s and +0.4 s, within max_delay
    assert results[0][0] == 429
    for _, body in results[1:]:
        problem = assert_problem(body, 429)
        assert problem["code"] == "rate_limited" and problem["source"] == "gateway"
        assert 0 < problem["retry_after"] <= 1.0
    assert len(fresh_standins.seen("bizzstream")) == 1  # only the 429 call left
