"""Redis Sentinel as the gateway's store (issue 13, part 3): real processes.

A primary, one replica and three sentinels (``redis-server --sentinel``), two
gateways with ``REDIS_URL=redis+sentinel://<sentinels>/gwprimary`` and the
stand-ins. Under load, ``SENTINEL FAILOVER`` promotes the replica: the gateways
follow the new primary without a restart (the limiter's keys appear there, the
shared Beeswax session too), nothing answers 500, and the figures are printed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import aiohttp
import pytest
import redis as redis_sync

from tests.e2e.test_ratelimit_replicas import max_in_window
from tests.fleet.deployments import SentinelGroup, sentinel_group
from tests.harness import Gateway, Standins, call, gateway_env, launch_gateway, launch_standins
from tests.harness import write_config as write_shipped_config

pytestmark = pytest.mark.e2e
SHARED = "standin-consumer-key"


@pytest.fixture(scope="module")
def group() -> Iterator[SentinelGroup]:
    with sentinel_group() as g:
        yield g


@pytest.fixture(scope="module")
def standins() -> Iterator[Standins]:
    s = launch_standins({"beeswax": {"login_limit_per_minute": 10_000}})
    yield s
    s.stop()


def _config(data: dict[str, Any]) -> None:
    data["redis"]["replicas"] = 2


@pytest.fixture(scope="module")
def gateways(
    group: SentinelGroup, standins: Standins, tmp_path_factory: Any
) -> Iterator[list[Gateway]]:
    config = write_shipped_config(tmp_path_factory.mktemp("sentinel"), _config)
    env = gateway_env(standins, group.url)
    with ThreadPoolExecutor(2) as pool:
        gws = list(pool.map(lambda _: launch_gateway(env, config), range(2)))
    yield gws
    for gw in gws:
        gw.stop()


async def _get(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as resp:
        await resp.read()
        return resp.status


def _events(gw: Gateway, name: str, since: float) -> list[float]:
    out = []
    for line in gw.log_lines():
        if line.get("event") == name:
            when = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
            if when >= since:
                out.append(when)
    return out


def test_the_gateways_follow_a_promoted_replica_without_a_restart(
    group: SentinelGroup, gateways: list[Gateway], standins: Standins
) -> None:
    ready = json.loads(call(gateways[0], "GET", "/readyz")[2])
    assert ready["checks"]["redis_mode"] == "sentinel" and ready["checks"]["redis"] == "ok"
    old = group.current_primary()
    standins.reset()
    failed_over_at = promoted_at = 0.0

    async def scenario() -> list[int]:
        nonlocal failed_over_at, promoted_at
        statuses: list[int] = []
        end = time.monotonic() + 8.0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def worker(i: int) -> None:
                while time.monotonic() < end:
                    gw = gateways[i % 2]
                    path = "/buzzstream/websites" if i % 3 else "/beeswax/rest/advertiser"
                    statuses.append(await _get(session, gw.url + path))

            async def promote() -> None:
                nonlocal failed_over_at, promoted_at
                await asyncio.sleep(2.0)
                sentinel = redis_sync.Redis(host="127.0.0.1", port=group.sentinels[0])
                failed_over_at = time.time()
                await asyncio.to_thread(
                    sentinel.execute_command, "SENTINEL", "FAILOVER", group.service
                )
                while group.current_primary() == old:  # noqa: ASYNC110 (polls another process)
                    await asyncio.sleep(0.05)
                promoted_at = time.time()

            await asyncio.gather(promote(), *(worker(i) for i in range(6)))
        return statuses

    statuses = asyncio.run(scenario())
    new = group.current_primary()
    assert new != old
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    seen = standins.seen("buzzstream")
    times = [float(s["arrived"]) for s in seen if s["principal"] == SHARED]
    fallbacks = [
        (min(_events(gw, "redis_unavailable", failed_over_at), default=0.0),
         max(_events(gw, "redis_recovered", failed_over_at), default=0.0))
        for gw in gateways
    ]  # fmt: skip
    spans = [round(end - start, 2) for start, end in fallbacks if start and end]
    print(
        f"sentinel failover :{old} -> :{new} (promoted {promoted_at - failed_over_at:.2f}s after "
        f"SENTINEL FAILOVER): statuses {counts}; limiter fallback per gateway {spans} s; "
        f"BuzzStream peak {max_in_window(times)} in a 1 s window; "
        f"suspensions {standins.stats('buzzstream').get('suspensions', 0)}"
    )
    assert 500 not in counts and set(counts) == {200}

    # Without a restart, the gateways now keep their state on the new primary.
    deadline = time.monotonic() + 10
    primary = redis_sync.Redis(host="127.0.0.1", port=new)
    primary.delete(*primary.keys("gw:{buzzstream:*}") or ["none"])
    while time.monotonic() < deadline:
        assert call(gateways[0], "GET", "/buzzstream/websites")[0] == 200
        if primary.keys("gw:{buzzstream:*}:per_account"):
            break
        time.sleep(0.2)
    assert primary.keys("gw:{buzzstream:*}:per_account"), (
        "the limiter does not write to the new primary"
    )
    assert primary.keys("gw:{beeswax:*}:!session")  # the shared session lives there too
    ready = json.loads(call(gateways[1], "GET", "/readyz")[2])
    assert ready["checks"]["redis"] == "ok" and ready["checks"]["limiter"] == "redis"
