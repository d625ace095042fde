"""Beeswax session auth end to end: real stand-in and gateway processes over loopback.

Acceptance (issue 3): a session expiring under 40 concurrent calls causes exactly
one new login, and all 40 calls are answered 200.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from gateway.server.app import create_app
from tests.conftest import assert_problem, make_config
from tests.e2e.auth_support import call, renewals
from tests.harness import Gateway, Standins, gateway_env, launch_gateway, launch_standins

# The stand-in allows 10 logins per minute per email; these tests log in more often
# than that on purpose, so they get their own stand-ins.
SETTINGS: dict[str, Any] = {"beeswax": {"login_limit_per_minute": 1000}}


@pytest.fixture(scope="module")
def bees() -> Iterator[Standins]:
    standins = launch_standins(SETTINGS)
    yield standins
    standins.stop()


@pytest.fixture(scope="module")
def gateway(bees: Standins) -> Iterator[Gateway]:
    gw = launch_gateway(gateway_env(bees))
    yield gw
    gw.stop()


@pytest.fixture
def fresh(bees: Standins) -> Standins:
    bees.admin("beeswax", "/__standin/settings", {"rotate_every": 0, "session_ttl": 900})
    bees.reset()
    return bees


async def test_expired_session_under_40_concurrent_calls_logs_in_once(
    gateway: Gateway, fresh: Standins
) -> None:
    async with aiohttp.ClientSession() as session:

        async def one() -> int:
            async with session.get(f"{gateway.url}/beeswax/rest/advertiser") as resp:
                await resp.read()
                return resp.status

        # A live session, and 40 warm connections on both hops, so that the 40
        # calls below reach the stand-in together and meet the expired session.
        assert await asyncio.gather(*(one() for _ in range(40))) == [200] * 40
        fresh.reset()
        logins_before = 0
        renewed_before = renewals(gateway, "beeswax")
        fresh.admin("beeswax", "/__standin/expire_sessions")
        statuses = await asyncio.gather(*(one() for _ in range(40)))
    stats = fresh.stats("beeswax")
    logins = stats.get("logins", 0) - logins_before
    print(  # figures for the closing note (pytest -s)
        f"\nbeeswax: 40 concurrent calls after expiry -> {logins} login(s), "
        f"{stats.get('auth_failures', 0)} calls met the expired session, "
        f"statuses {sorted(set(statuses))}"
    )
    assert statuses == [200] * 40
    assert logins == 1
    assert stats.get("auth_failures", 0) >= 1  # the expired session was met
    assert stats.get("login_throttled", 0) == 0
    assert renewals(gateway, "beeswax") == renewed_before + 1


def test_a_rotated_session_cookie_is_kept(gateway: Gateway, fresh: Standins) -> None:
    """Every Set-Cookie of every reply is stored: with rotation and no grace, a
    gateway that kept only the login's cookie would meet 401s and log in again."""
    call(gateway, "GET", "/beeswax/rest/advertiser")
    fresh.admin("beeswax", "/__standin/settings", {"rotate_every": 2, "rotation_grace": 0})
    fresh.reset()
    for _ in range(8):
        assert call(gateway, "GET", "/beeswax/rest/advertiser")[0] == 200
    stats = fresh.stats("beeswax")
    assert stats.get("session_rotated", 0) >= 3
    assert stats.get("logins", 0) == 0
    assert stats.get("auth_failures", 0) == 0


async def test_the_remember_cookie_renews_the_session_without_a_login(
    aiohttp_client: Any, fresh: Standins
) -> None:
    # A gateway of its own: the module's gateway logged in after a 401 moments
    # ago, and min_login_interval spaces such logins.
    client = await aiohttp_client(create_app(make_config(fresh)))
    fresh.admin("beeswax", "/__standin/settings", {"session_ttl": 1})
    assert (await client.get("/beeswax/rest/advertiser")).status == 200  # logs in
    await asyncio.sleep(1.1)  # the 1 s session is gone; keep_logged_in's remember cookie is not
    fresh.reset()
    assert (await client.get("/beeswax/rest/advertiser")).status == 200
    assert (await client.get("/beeswax/rest/advertiser")).status == 200
    stats = fresh.stats("beeswax")
    assert stats.get("session_renewed_by_remember", 0) == 1  # the new cookie was then kept
    assert stats.get("logins", 0) == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/beeswax/rest/v2/campaigns?page_size=2", None, 200),
        ("POST", "/beeswax/rest/advertiser", b'{"advertiser_name": "New"}', 200),
        ("PUT", "/beeswax/rest/advertiser", b'{"advertiser_id": 1, "advertiser_name": "R"}', 200),
        ("DELETE", "/beeswax/rest/advertiser", b'{"advertiser_id": 2}', 200),
    ],
)
def test_every_method_is_accepted(
    gateway: Gateway, fresh: Standins, method: str, path: str, body: bytes | None, status: int
) -> None:
    headers = {"Content-Type": "application/json"} if body else {}
    got, _, reply = call(gateway, method, path, body, headers)
    assert got == status, reply
    assert fresh.stats("beeswax").get("auth_failures", 0) == 0


async def test_login_429_backs_off_without_a_login_storm(aiohttp_client: Any) -> None:
    standins = launch_standins({"beeswax": {"login_limit_per_minute": 1}})
    try:
        client = await aiohttp_client(create_app(make_config(standins)))
        assert (await client.get("/beeswax/rest/advertiser")).status == 200  # the one login
        standins.admin("beeswax", "/__standin/expire_sessions")
        resp = await client.get("/beeswax/rest/advertiser")
        problem = assert_problem(await resp.read(), 429)
        assert (problem["code"], problem["source"]) == ("rate_limited", "upstream")
        retry = int(resp.headers["Retry-After"])
        assert 1 <= retry <= 60  # the stand-in's Retry-After, honoured
        more = await asyncio.gather(*(client.get("/beeswax/rest/advertiser") for _ in range(20)))
        assert {r.status for r in more} == {429}
        assert all(1 <= int(r.headers["Retry-After"]) <= retry for r in more)
        stats = standins.stats("beeswax")
        assert stats.get("login_throttled", 0) == 1  # one refused login, not 21
    finally:
        standins.stop()


async def test_a_refused_password_is_upstream_auth_failed_and_never_loops(
    aiohttp_client: Any, bees: Standins
) -> None:
    bees.reset()
    config = make_config(bees, BEESWAX_PASSWORD="not-the-password")
    client = await aiohttp_client(create_app(config))
    replies = await asyncio.gather(*(client.get("/beeswax/rest/advertiser") for _ in range(10)))
    for resp in replies:
        problem = assert_problem(await resp.read(), 502)
        assert problem["code"] == "upstream_auth_failed"
        assert "not-the-password" not in problem["detail"]
    assert bees.stats("beeswax").get("login_failures", 0) == 1
    assert "logins" not in bees.stats("beeswax")


async def test_per_user_credentials_log_in_as_that_user(
    aiohttp_client: Any, bees: Standins, tmp_path: Any
) -> None:
    from tests.e2e.auth_support import write_config

    bees.admin("beeswax", "/__standin/settings", {"users": {"alice@example.com": "alice-pw"}})
    bees.reset()

    def change(data: dict[str, Any]) -> None:
        data["upstreams"]["beeswax"]["auth"]["users"] = {
            "alice": {"email": "alice@example.com", "password": "alice-pw"}
        }

    client = await aiohttp_client(create_app(make_config(bees, write_config(tmp_path, change))))
    assert (
        await client.get("/beeswax/rest/advertiser", headers={"X-Gateway-User": "alice"})
    ).status == 200
    assert (await client.get("/beeswax/rest/advertiser")).status == 200
    principals = [s["principal"] for s in bees.seen("beeswax") if s["path"] == "/rest/advertiser"]
    assert principals == ["alice@example.com", "ops@example.com"]


def test_a_caller_cannot_log_the_shared_session_in_as_another_account(
    gateway: Gateway, fresh: Standins
) -> None:
    """Session fixation: a caller's own login or logout is answered by the gateway
    (the drop-in mode for SDKs) and never reaches Beeswax, so no Set-Cookie of the
    caller's account can ever replace the tenant's session in the shared jar, and
    the caller gets no cookie of any value."""
    fresh.admin("beeswax", "/__standin/settings", {"users": {"mallory@example.com": "mallory-pw"}})
    assert call(gateway, "GET", "/beeswax/rest/advertiser")[0] == 200  # a live shared session
    fresh.reset()
    login = json.dumps({"email": "mallory@example.com", "password": "mallory-pw"}).encode()
    json_type = {"Content-Type": "application/json"}
    for method, path in (
        ("POST", "/beeswax/rest/authenticate"),
        ("POST", "/beeswax/rest/v2/authenticate"),
        ("POST", "/beeswax/rest/authentic%61te"),
        ("POST", "/beeswax/rest/Authenticate/"),
        ("DELETE", "/beeswax/rest/authenticate"),
        ("POST", "/beeswax/rest/logout"),
    ):
        status, headers, reply = call(gateway, method, path, login, json_type)
        assert status == 200, reply
        assert json.loads(reply)["success"] is True
        assert "set-cookie" not in headers and headers["content-type"].startswith(
            "application/json"
        )
    for method, path in (
        ("PUT", "/beeswax/rest/authenticate"),  # a password change
        ("POST", "/beeswax/rest/authenticate/strict"),
        ("GET", "/beeswax/rest/authenticate"),
    ):
        status, _, reply = call(gateway, method, path, login, json_type)
        problem = assert_problem(reply, 400)
        assert problem["code"] == "invalid_request", path
        assert "manages the Beeswax session" in problem["detail"]
    assert fresh.seen("beeswax") == []  # nothing was sent
    assert "mallory-pw" not in gateway.logs()
    assert call(gateway, "GET", "/beeswax/rest/advertiser")[0] == 200
    assert [s["principal"] for s in fresh.seen("beeswax")] == ["ops@example.com"]


async def test_an_endpoint_that_always_answers_401_costs_at_most_one_login(
    aiohttp_client: Any, fresh: Standins
) -> None:
    """A 401 can mean "no rights" (upstreams.md): 12 calls that each meet one must
    not log in 12 times (which used 10 logins, then locked the tenant out)."""
    client = await aiohttp_client(create_app(make_config(fresh)))
    problems = []
    for _ in range(12):
        resp = await client.get("/beeswax/__fault/empty/401")
        problems.append(assert_problem(await resp.read(), 502))
    stats = fresh.stats("beeswax")
    assert stats.get("logins", 0) <= 1
    assert stats.get("login_throttled", 0) == 0
    # Final at once: mapped from the upstream's own 401, not "after one renewal".
    assert {(p["code"], p["upstream_status"]) for p in problems} == {("upstream_auth_failed", 401)}
    assert (await client.get("/beeswax/rest/advertiser")).status == 200  # the session still works
    assert len([s for s in fresh.seen("beeswax") if s["path"] == "/__fault/empty/401"]) == 12
