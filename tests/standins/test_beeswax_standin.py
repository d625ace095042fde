"""The Beeswax stand-in: cookie sessions, login limits and both envelopes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

Client = TestClient[Any, Any]
ClientFactory = Callable[[dict[str, Any] | None], Awaitable[Client]]  # see conftest.py

LOGIN = {"email": "ops@example.com", "password": "standin-password", "keep_logged_in": False}
COOKIE = "standin_buzz_cookie"
NOT_AUTH = {
    "success": False,
    "message": "Not authenticated",
    "errors": ["ERROR: not authenticated"],
}


async def _login(client: Client, keep: bool = False) -> aiohttp.ClientResponse:
    resp = await client.post("/rest/authenticate", json={**LOGIN, "keep_logged_in": keep})
    assert resp.status == 200, await resp.text()
    return resp


async def _stats(client: Client) -> dict[str, int]:
    stats: dict[str, int] = await (await client.get("/__standin/stats")).json()
    return stats


async def _raw_get(client: Client, path: str, cookies: str) -> aiohttp.ClientResponse:
    """A GET with exactly these cookies (the test client's jar left out)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        resp = await session.get(client.make_url(path), headers={"Cookie": cookies})
        await resp.read()
        return resp


async def test_login_then_call(bees: Client) -> None:
    resp = await _login(bees)
    assert await resp.json() == {"success": "true", "message": "Cookie set successfully"}
    assert resp.cookies[COOKIE]["httponly"] and resp.cookies[COOKIE]["path"] == "/"
    assert "standin_buzz_remember" not in resp.cookies
    resp = await bees.get("/rest/advertiser")
    assert resp.status == 200
    body = await resp.json()
    assert body["success"] is True and len(body["payload"]) == 3
    assert (await _stats(bees))["logins"] == 1
    seen = await (await bees.get("/__standin/requests")).json()
    assert seen[-1]["principal"] == "ops@example.com" and seen[-1]["auth_ok"] is True


async def test_v2_login_and_buzz_key_names_the_cookie(bees_factory: ClientFactory) -> None:
    client = await bees_factory({"buzz_key": "acme"})
    resp = await client.post("/rest/v2/authenticate", json=LOGIN)
    assert resp.status == 200 and "acme_buzz_cookie" in resp.cookies


async def test_no_cookie_401(bees: Client) -> None:
    resp = await bees.get("/rest/advertiser")
    assert resp.status == 401 and await resp.json() == NOT_AUTH
    assert (await _stats(bees))["auth_failures"] == 1


async def test_wrong_password_401(bees: Client) -> None:
    resp = await bees.post("/rest/authenticate", json={**LOGIN, "password": "nope"})
    assert resp.status == 401
    assert await resp.json() == {
        "success": False,
        "message": "Invalid credentials",
        "errors": ["ERROR: Invalid email or password"],
    }
    assert COOKIE not in resp.cookies
    assert (await _stats(bees))["login_failures"] == 1


async def test_login_throttled_after_ten(bees: Client) -> None:
    for _ in range(10):
        await _login(bees)
    resp = await bees.post("/rest/authenticate", json=LOGIN)
    assert resp.status == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert await resp.json() == {"success": False, "errors": ["ERROR: Too many login attempts"]}
    stats = await _stats(bees)
    assert stats["logins"] == 10 and stats["login_throttled"] == 1
    # the limit is per email
    resp = await bees.post("/rest/authenticate", json={**LOGIN, "email": "other@example.com"})
    assert resp.status == 401


async def test_remember_cookie_renews_expired_session(bees_factory: ClientFactory) -> None:
    client = await bees_factory({"session_ttl": 0.3})
    resp = await _login(client, keep=True)
    first = resp.cookies[COOKIE].value
    assert "standin_buzz_remember" in resp.cookies
    await asyncio.sleep(0.4)
    resp = await client.get("/rest/campaign")
    assert resp.status == 200
    renewed = resp.cookies[COOKIE].value
    assert renewed != first
    assert (await _stats(client))["session_renewed_by_remember"] == 1
    resp = await client.get("/rest/campaign")  # the jar now sends the new session
    assert resp.status == 200 and COOKIE not in resp.cookies
    assert (await _stats(client))["session_renewed_by_remember"] == 1


async def test_expired_session_without_remember_401(bees_factory: ClientFactory) -> None:
    client = await bees_factory({"session_ttl": 0.2})
    await _login(client)
    await asyncio.sleep(0.3)
    assert (await client.get("/rest/campaign")).status == 401


async def test_expire_sessions_gives_401(bees: Client) -> None:
    await _login(bees, keep=True)
    assert (await bees.get("/rest/user")).status == 200
    assert (await bees.post("/__standin/expire_sessions")).status == 200
    resp = await bees.get("/rest/user")
    assert resp.status == 401 and await resp.json() == NOT_AUTH


async def test_rotation_keeps_old_cookie_for_grace(bees_factory: ClientFactory) -> None:
    client = await bees_factory({"rotate_every": 2, "rotation_grace": 0.3})
    old = (await _login(client)).cookies[COOKIE].value
    assert COOKIE not in (await client.get("/rest/user")).cookies
    rotated = await client.get("/rest/user")
    new = rotated.cookies[COOKIE].value
    assert new != old and (await _stats(client))["session_rotated"] == 1
    assert (await _raw_get(client, "/rest/account", f"{COOKIE}={old}")).status == 200
    await asyncio.sleep(0.4)
    assert (await _raw_get(client, "/rest/account", f"{COOKIE}={old}")).status == 401
    assert (await _raw_get(client, "/rest/account", f"{COOKIE}={new}")).status == 200


async def test_report_queue_one_per_second(bees: Client) -> None:
    await _login(bees)
    first = await bees.post("/rest/report_queue", json={})
    assert first.status == 200
    assert (await first.json())["payload"]["report_id"] == 1
    second = await bees.post("/rest/report_queue", json={})
    assert second.status == 429 and int(second.headers["Retry-After"]) >= 1
    assert (await second.json())["success"] is False
    assert (await _stats(bees))["report_queue_throttled"] == 1


async def test_nothing_found_is_success_false_in_200(bees: Client) -> None:
    await _login(bees)
    resp = await bees.get("/rest/advertiser", params={"advertiser_id": "999"})
    assert resp.status == 200
    assert await resp.json() == {
        "success": False,
        "payload": "Nothing found or problem with the query",
        "errors": ["ERROR: Nothing found matching those criteria"],
    }
    resp = await bees.get("/rest/advertiser", params={"advertiser_id": "2"})
    assert [a["advertiser_id"] for a in (await resp.json())["payload"]] == [2]


async def test_create_and_warnings(bees: Client) -> None:
    await _login(bees)
    resp = await bees.post("/rest/advertiser", json={"advertiser_name": "New"})
    assert await resp.json() == {
        "success": True,
        "payload": "advertiser created with ID 4",
        "id": 4,
    }
    resp = await bees.post("/rest/advertiser", json={"alternative_id": "x"})
    assert resp.status == 406
    assert (await resp.json())["errors"] == ["ERROR: advertiser_name is required"]
    resp = await bees.post("/rest/advertiser", json={"advertiser_name": "W", "alternative_id": "a"})
    body = await resp.json()
    assert resp.status == 200 and body["success"] is True
    assert body["errors"] == ["WARNING: alternative_id is deprecated"]


async def test_strict_mode_warning_is_409(bees: Client) -> None:
    await _login(bees)
    body = {"advertiser_name": "W", "alternative_id": "a"}
    resp = await bees.post("/rest/advertiser/strict", json=body)
    assert resp.status == 409
    assert await resp.json() == {
        "success": False,
        "errors": ["WARNING: alternative_id is deprecated"],
    }
    resp = await bees.post("/rest/advertiser/strict", json={"advertiser_name": "Clean"})
    assert resp.status == 200 and (await resp.json())["success"] is True


async def test_bulk_partial_failure_in_200(bees: Client) -> None:
    await _login(bees)
    items = [{"advertiser_id": 1, "advertiser_name": "One"}, {"advertiser_id": 999}]
    for method in ("PUT", "DELETE"):
        resp = await bees.request(method, "/rest/advertiser", json=items)
        assert resp.status == 200
        assert await resp.json() == {
            "success": True,
            "payload": [
                {"id": 1, "success": True, "error_code": None, "message": []},
                {
                    "id": 999,
                    "success": False,
                    "error_code": 404,
                    "message": ["ERROR: advertiser 999 not found"],
                },
            ],
            "errors": ["ERROR: 1 of 2 objects failed"],
        }
        if method == "PUT":
            got = await bees.get("/rest/advertiser", params={"advertiser_id": "1"})
            assert (await got.json())["payload"][0]["advertiser_name"] == "One"
        items = [{"advertiser_id": 1}, {"advertiser_id": 999}]


async def test_status_codes(bees: Client) -> None:
    await _login(bees)
    expected: list[tuple[str, str, int]] = [
        ("PUT", "/rest/account", 405),
        ("GET", "/rest/account", 200),
        ("GET", "/rest/forbidden_thing", 403),
        ("GET", "/rest/no_such_thing", 404),
        ("PATCH", "/rest/advertiser", 400),
    ]
    for method, path, status in expected:
        resp = await bees.request(method, path, json={})
        assert resp.status == status, path
        assert (await resp.json())["success"] is (status == 200)
    resp = await bees.put("/rest/account", json={})
    assert (await resp.json())["errors"] == ["ERROR: method not allowed on read-only element"]
    resp = await bees.get("/rest/fail")
    assert resp.status == 500 and resp.content_type == "text/html"


async def test_v2_paging(bees: Client) -> None:
    await _login(bees)
    resp = await bees.get("/rest/v2/campaigns")
    page: dict[str, Any] = await resp.json()
    assert page["count"] == 120 and len(page["results"]) == 50 and page["previous"] is None
    assert "page=2" in page["next"]
    resp = await bees.get("/rest/v2/campaigns", params={"page": "3", "page_size": "50"})
    page = await resp.json()
    assert len(page["results"]) == 20 and page["next"] is None and "page=2" in page["previous"]
    resp = await bees.get("/rest/v2/campaigns", params={"page_size": "lots"})
    assert resp.status == 400
    assert await resp.json() == {"page_size": ["A valid integer is required."]}
    resp = await bees.get("/rest/v2/campaigns/9999")
    assert resp.status == 404 and await resp.json() == {"detail": "Not found."}
    resp = await bees.post("/rest/v2/campaigns", json={"advertiser_id": 1})
    assert resp.status == 400 and await resp.json() == {"name": ["This field is required."]}
    resp = await bees.post("/rest/v2/campaigns", json={"name": "Fresh"})
    assert resp.status == 201
    created = await resp.json()
    resp = await bees.get(f"/rest/v2/campaigns/{created['id']}")
    assert (await resp.json())["name"] == "Fresh"
    assert (await bees.get("/rest/v2/campaigns")).status == 200


async def test_v2_needs_session(bees: Client) -> None:
    assert (await bees.get("/rest/v2/campaigns")).status == 401
