"""The cross-replica lock and shared sessions against a real Redis (in-process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.config_reader import Secret
from gateway.errors import UpstreamUnavailable
from gateway.server.redis_lock import RedisLock
from gateway.server.shared_sessions import RedisSessionFleet
from gateway.server.tokenstore import fernet_from
from gateway.upstreams.base import SharedSession
from tests.harness import free_port


@pytest.fixture
async def client(redis_flushed: str) -> AsyncIterator[Any]:
    conn = aioredis.Redis.from_url(redis_flushed)
    yield conn
    await conn.aclose()


def make_fleet(client: Any, wait: float = 5.0, lock_ttl: float = 1.0) -> RedisSessionFleet:
    cipher, _ = fernet_from(Secret("fleet-test-key"))
    return RedisSessionFleet(client, "gwt", cipher, lock_ttl=lock_ttl, wait=wait)


async def test_the_lock_is_released_by_its_owner_only_and_expires(client: Any) -> None:
    first = RedisLock(client, "gwt:lock", ttl=0.3)
    assert await first.acquire()
    second = RedisLock(client, "gwt:lock", ttl=0.3)
    assert not await second.acquire()
    assert not await second.release()  # not the owner: nothing deleted
    assert await client.get("gwt:lock") == first.token.encode()
    await asyncio.sleep(0.5)  # the owner's watchdog keeps it alive
    assert await client.get("gwt:lock") == first.token.encode()
    assert await first.release()
    assert await client.get("gwt:lock") is None
    dead = RedisLock(client, "gwt:lock", ttl=0.2)
    assert await dead.acquire()
    assert dead._watchdog is not None
    dead._watchdog.cancel()  # the owner "dies": nobody extends the lock
    await asyncio.sleep(0.3)
    assert await RedisLock(client, "gwt:lock", ttl=0.2).acquire()


async def test_concurrent_renewals_of_many_replicas_log_in_once(client: Any) -> None:
    fleets = [make_fleet(client) for _ in range(4)]  # four "replicas" on one Redis
    logins = 0

    async def login() -> tuple[dict[str, Any], float | None]:
        nonlocal logins
        logins += 1
        await asyncio.sleep(0.1)
        return {"token": f"t{logins}"}, 60.0

    results = await asyncio.gather(
        *(f.renew("beeswax", "ops@example.com", lambda r: r is not None, login) for f in fleets)
    )
    assert logins == 1
    assert sorted(joined for _, joined in results) == [False, True, True, True]
    assert {s.data["token"] for s, _ in results} == {"t1"}
    raw = await client.get(fleets[0].keys("beeswax", "ops@example.com")[0])
    assert b"t1" not in raw  # encrypted at rest
    assert 0 < await client.pttl(fleets[0].keys("beeswax", "ops@example.com")[0]) <= 60_000


async def test_a_rejected_session_is_replaced_once_and_updates_never_overwrite_a_newer_login(
    client: Any,
) -> None:
    fleet = make_fleet(client)
    first, _ = await fleet.renew("so", "acct", lambda r: r is not None, _login("old"))
    logins: list[str] = []

    async def login() -> tuple[dict[str, Any], float | None]:
        logins.append("new")
        return {"token": "new"}, None

    def fresh(rec: SharedSession | None) -> bool:
        return rec is not None and rec.id != first.id

    replicas = [make_fleet(client) for _ in range(3)]
    results = await asyncio.gather(*(f.renew("so", "acct", fresh, login) for f in replicas))
    assert logins == ["new"]
    second = results[0][0]
    assert {s.id for s, _ in results} == {second.id} and second.id != first.id
    assert await client.pttl(fleet.keys("so", "acct")[0]) == -1  # no lifetime: no TTL
    fleet.publish("so", "acct", SharedSession(first.id, {"token": "old-rotated"}), 60)
    await asyncio.sleep(0.1)
    current = await fleet.load("so", "acct")
    assert current is not None and current.data == {"token": "new"}  # the old login lost
    fleet.publish("so", "acct", SharedSession(second.id, {"token": "new-rotated"}), 60)
    await asyncio.sleep(0.1)
    current = await fleet.load("so", "acct")
    assert current is not None and current.data == {"token": "new-rotated"}


def _login(token: str) -> Any:
    async def login() -> tuple[dict[str, Any], float | None]:
        return {"token": token}, 60.0

    return login


async def test_waiting_for_another_replicas_login_is_bounded(client: Any) -> None:
    fleet = make_fleet(client, wait=0.3, lock_ttl=5.0)
    holder = RedisLock(client, fleet.keys("bz", "acct")[1], ttl=5.0)
    assert await holder.acquire()  # another replica logs in, and takes its time
    try:
        with pytest.raises(UpstreamUnavailable, match=r"redis\.session_wait"):
            await fleet.renew("bz", "acct", lambda r: r is not None, _login("x"))
    finally:
        await holder.release()


async def test_redis_down_logs_in_alone_after_the_lock_ttl() -> None:
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        fleet = make_fleet(dead, wait=5.0, lock_ttl=0.2)
        session, joined = await fleet.renew("bz", "acct", lambda r: r is not None, _login("x"))
        assert (session.data["token"], joined) == ("x", False)
        assert await fleet.load("bz", "acct") is None
    finally:
        await dead.aclose()
