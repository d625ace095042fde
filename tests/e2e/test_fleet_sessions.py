"""One upstream session for the whole fleet (issue 13, part 1): real processes.

Four gateway processes share one redis-server; the stand-ins (their own
process) count every login. After the upstream forgets the session, 200
concurrent calls spread over the four replicas must cause exactly one login
(Beeswax cookie jar, StreamOne session, BizzStream client-credentials token):
one replica logs in under the Redis lock, the others adopt its session
(``gateway_auth_renewals_total{result="joined"}``). A replica killed while it
holds the login lock delays the others by at most the lock's expiry.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis as redis_sync

from gateway.core.quota import key_tag
from tests.e2e.auth_support import renewals
from tests.harness import Gateway, Standins, gateway_env, launch_gateway, launch_standins
from tests.harness import write_config as write_shipped_config

pytestmark = pytest.mark.e2e
REPLICAS = 4
CALLS = 200
LOCK_TTL = 2.0
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CALLS_OF = {
    "beeswax": ("GET", "/beeswax/rest/advertiser", None, {}),
    "streamone": ("POST", "/streamone/item/view", b"id=item1", FORM),
    "bizzstream": ("GET", "/bizzstream/api/v1/documents?ddName=fleet", None, {}),
}
LOGINS = {"beeswax": "logins", "streamone": "logins", "bizzstream": "token_grants"}


def fleet_config(data: dict[str, Any]) -> None:
    data["redis"]["session_lock_ttl"] = f"{LOCK_TTL:g}s"
    up = data["upstreams"]
    # Several fleet-wide expiries follow each other here; the guard against
    # endpoints that always answer 401 is tested in test_auth_beeswax.py.
    up["beeswax"]["auth"]["min_login_interval"] = "0s"
    up["bizzstream"]["auth"] = {
        "client_credentials": {
            "token_url": "${BIZZSTREAM_URL}/oauth/token",
            "client_id": "standin-client",
            "client_secret": "standin-client-secret",
        },
        "environment_id": "${BIZZSTREAM_ENVIRONMENT_ID}",
    }
    up["streamone"]["auth"] = {
        "auth_type": "application",
        "actor_id": "application",
        "psk": "apppsk",
        "session": {"user": "alice", "password": "alice-password"},
    }


@pytest.fixture(scope="module")
def fleet_standins() -> Iterator[Standins]:
    # 200 calls that meet a forgotten session are 200 refusals at the upstream:
    # Beeswax's login limit and StreamOne's "status 8 after 20 failed
    # authentications" are tested elsewhere; here only the logins are counted.
    standins = launch_standins(
        {"beeswax": {"login_limit_per_minute": 10_000}, "streamone": {"invalid_auth_limit": 10_000}}
    )
    yield standins
    standins.stop()


@pytest.fixture(scope="module")
def fleet_redis(redis_url: str) -> str:
    client = redis_sync.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return redis_url


@pytest.fixture(scope="module")
def fleet(
    fleet_standins: Standins, fleet_redis: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Gateway]]:
    config = write_shipped_config(tmp_path_factory.mktemp("fleet"), fleet_config)
    env = gateway_env(fleet_standins, fleet_redis)
    with ThreadPoolExecutor(REPLICAS) as pool:  # start-up in parallel: CI time
        gateways = list(pool.map(lambda _: launch_gateway(env, config), range(REPLICAS)))
    yield gateways
    for gw in gateways:
        gw.stop()


async def _burst(gateways: list[Gateway], upstream: str, n: int) -> list[int]:
    method, path, body, headers = CALLS_OF[upstream]
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def one(i: int) -> int:
            url = gateways[i % len(gateways)].url + path
            try:
                async with session.request(method, url, data=body, headers=headers) as resp:
                    await resp.read()
                    return resp.status
            except aiohttp.ClientError:
                return -1  # the replica was killed

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def logins(standins: Standins, upstream: str) -> int:
    return int(standins.stats(upstream).get(LOGINS[upstream], 0))


def warm_up(fleet: list[Gateway], standins: Standins, upstream: str) -> None:
    """One call per replica, one by one: the first logs in, the others join."""
    for gw in fleet:
        assert asyncio.run(_burst([gw], upstream, 1)) == [200]


def expire(standins: Standins, upstream: str) -> None:
    route = "/__standin/expire_tokens" if upstream == "bizzstream" else "/__standin/expire_sessions"
    standins.admin(upstream, route, {})


@pytest.mark.parametrize("upstream", ["beeswax", "streamone", "bizzstream"])
def test_one_login_for_the_fleet_after_the_session_expired(
    fleet: list[Gateway], fleet_standins: Standins, upstream: str
) -> None:
    fleet_standins.reset()
    warm_up(fleet, fleet_standins, upstream)
    assert logins(fleet_standins, upstream) <= 1  # 0 when an earlier test left a session
    expire(fleet_standins, upstream)
    before = logins(fleet_standins, upstream)
    joined_before = sum(renewals(gw, upstream, "joined") for gw in fleet)

    started = time.monotonic()
    statuses = asyncio.run(_burst(fleet, upstream, CALLS))
    took = time.monotonic() - started

    assert statuses == [200] * CALLS
    new_logins = logins(fleet_standins, upstream) - before
    joined = sum(renewals(gw, upstream, "joined") for gw in fleet) - joined_before
    print(f"{upstream}: {CALLS} calls over {REPLICAS} replicas after expiry: {new_logins} "
          f"login(s) at the stand-in, {joined:g} replicas joined, {took:.2f}s")  # fmt: skip
    assert new_logins == 1
    assert joined == REPLICAS - 1  # every other replica adopted that one login


def test_cookies_one_replica_receives_reach_the_others_before_the_old_ones_end(
    fleet: list[Gateway], fleet_standins: Standins
) -> None:
    """Beeswax rotates session cookies (every 10th call here); the old cookie
    works for 2 s more. A replica that received the new cookie publishes the
    jar and the others adopt it within a second, so no replica ever falls
    back on the keep-logged-in cookie or logs in again."""
    standins = fleet_standins
    standins.reset()
    warm_up(fleet, standins, "beeswax")
    logins_before = logins(standins, "beeswax")
    standins.admin("beeswax", "/__standin/settings", {"rotate_every": 10, "rotation_grace": 2})

    async def traffic() -> list[int]:
        statuses: list[int] = []
        end = time.monotonic() + 4.0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

            async def worker(gw: Gateway) -> None:
                while time.monotonic() < end:
                    async with session.get(gw.url + "/beeswax/rest/advertiser") as resp:
                        await resp.read()
                        statuses.append(resp.status)
                    await asyncio.sleep(0.1)

            await asyncio.gather(*(worker(gw) for gw in fleet))
        return statuses

    try:
        statuses = asyncio.run(traffic())
    finally:
        standins.admin("beeswax", "/__standin/settings", {"rotate_every": 0})
    stats = standins.stats("beeswax")
    print(f"rotation: {len(statuses)} calls over {REPLICAS} replicas, "
          f"{stats.get('session_rotated', 0)} rotations, "
          f"{stats.get('session_renewed_by_remember', 0)} sessions renewed by the remember "
          f"cookie, {logins(standins, 'beeswax') - logins_before} logins")  # fmt: skip
    assert statuses == [200] * len(statuses)
    assert stats.get("session_rotated", 0) >= 3
    assert stats.get("session_renewed_by_remember", 0) == 0
    assert stats.get("auth_failures", 0) == 0
    assert logins(standins, "beeswax") == logins_before


def lock_holder(redis_url: str, email: str) -> int | None:
    client = redis_sync.Redis.from_url(redis_url)
    try:
        token = client.get(f"{key_tag('gw', 'beeswax', email)}:!lock")
    finally:
        client.close()
    return int(token.decode().split(":")[1]) if token else None


def test_a_replica_killed_holding_the_login_lock_delays_the_others_by_the_lock_ttl(
    fleet: list[Gateway], fleet_standins: Standins, fleet_redis: str
) -> None:
    standins = fleet_standins
    standins.reset()
    warm_up(fleet, standins, "beeswax")
    delay = 1.0
    standins.admin("beeswax", "/__standin/settings", {"login_delay": delay})
    expire(standins, "beeswax")

    async def scenario() -> tuple[list[int], float, float, int]:
        burst = asyncio.create_task(_burst(fleet, "beeswax", 40))
        deadline = time.monotonic() + 10
        pid, sent = None, False
        while not (pid and sent) and time.monotonic() < deadline:  # mid-login: lock + request
            pid = lock_holder(fleet_redis, "ops@example.com")
            sent = any(s["path"] == "/rest/authenticate" for s in standins.seen("beeswax"))
            await asyncio.sleep(0.02)
        assert pid is not None and sent, "no replica took the login lock"
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        statuses = await burst
        return statuses, killed_at, time.time(), pid

    try:
        statuses, killed_at, done_at, pid = asyncio.run(scenario())
    finally:
        standins.admin("beeswax", "/__standin/settings", {"login_delay": 0})
    victim = next(i for i, gw in enumerate(fleet) if gw.proc.pid == pid)
    survivors = [s for i, s in enumerate(statuses) if i % len(fleet) != victim]
    after_kill = [
        s for s in standins.seen("beeswax")
        if s["path"] == "/rest/authenticate" and s["arrived"] > killed_at
    ]  # fmt: skip
    recovery = done_at - killed_at
    print(f"holder killed mid-login: survivors answered {recovery:.2f}s after the kill (lock "
          f"TTL {LOCK_TTL:g}s + login {delay:g}s); {len(after_kill)} login(s) after")  # fmt: skip
    assert survivors == [200] * len(survivors)
    assert len(after_kill) == 1
    assert recovery <= LOCK_TTL + delay + 2.0
    fleet[victim].proc.wait(5)


def test_without_a_key_shared_sessions_refuse_to_start(
    fleet_standins: Standins, fleet_redis: str, tmp_path: Path
) -> None:
    env = gateway_env(fleet_standins, fleet_redis, GATEWAY_TOKEN_STORE_KEY="")
    with pytest.raises(RuntimeError, match="token_store_key: required"):
        launch_gateway(env)
