"""The StreamOne stand-in: signature checks, the status envelope and sessions.

Calls are signed with the small helper below, written from ``upstreams.md`` on
its own (it shares no code with the stand-in's verifier or the gateway).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from gateway.standins import streamone_verify as sv
from gateway.standins.streamone import create_app
from tests.clients.php_sdk import generate_password_response, signed_call

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

USER = ("user", "user", "psk")
APP = ("application", "application", "apppsk")


async def call(
    client: Client,
    command_action: str,
    args: dict[str, str] | None = None,
    *,
    actor: tuple[str, str, str] = USER,
    session: tuple[str, str] | None = None,
    timestamp: int | None = None,
    params: dict[str, str] | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    auth_type, actor_id, psk = actor
    query = {
        "api": "3",
        "format": "json",
        **(params or {}),
        "authentication_type": auth_type,
        auth_type: actor_id,
        "timestamp": str(int(time.time()) if timestamp is None else timestamp),
    }
    if session:
        query["session"] = session[0]
        psk += session[1]
    raw_query, body = urlencode(query), urlencode(args or {})
    path = f"/api/{command_action}"
    to_sign = f"{path}?{raw_query}&{body}".encode()
    signature = hmac.new((key or psk).encode(), to_sign, hashlib.sha1).hexdigest()
    url = URL(f"{path}?{raw_query}&signature={signature}", encoded=True)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with client.post(url, data=body.encode(), headers=headers) as resp:
        assert resp.status == 200
        reply: dict[str, Any] = await resp.json()
        return reply


@pytest.fixture
async def client(aiohttp_client: MakeClient) -> Client:
    return await aiohttp_client(create_app())


async def stats(client: Client) -> dict[str, int]:
    async with client.get("/__standin/stats") as resp:
        result: dict[str, int] = await resp.json()
        return result


@pytest.mark.parametrize(
    ("key", "to_sign", "expected"),
    [
        (
            "psk",
            "/api/item/view?api=3&authentication_type=user&format=json&timestamp=1234&user=user&",
            "a3a030d15fd3faef49fd1340cb474113645628dc",
        ),
        (
            "psk",
            "/api/item/view?api=3&authentication_type=user&format=json&timestamp=1234&user=user"
            "&x=ABxu233",
            "02b3c66918d4d1cce6f1558ee2470c341dfe40db",
        ),
        (
            "apppsk",
            "/api/item/view?api=3&application=application&authentication_type=application"
            "&format=json&timestamp=1234&",
            "588b4aaa105678d5de14b9f87e431c9cc7fe458c",
        ),
    ],
)
def test_public_vectors(key: str, to_sign: str, expected: str) -> None:
    path, _, rest = to_sign.partition("?")
    query, _, body = rest.rpartition("&")
    built = sv.string_to_sign(path, query, body.encode())
    assert built == to_sign.encode()
    assert sv.sign(key, built) == expected
    assert sv.split_signature(f"{query}&signature={expected}") == (query, expected)


def test_signature_must_be_last() -> None:
    assert sv.split_signature("signature=ab&api=3") is None
    assert sv.split_signature("api=3") is None


async def test_signed_call_is_accepted(client: Client) -> None:
    reply = await call(client, "item/view", {"id": "item1"})
    assert reply["header"] == {
        "status": 0,
        "statusmessage": "OK",
        "apiversion": 3,
        "cacheable": False,
        "timezone": "Europe/Amsterdam",
    }
    assert reply["body"]["id"] == "item1"
    reply = await call(client, "item/list", actor=APP, params={"timezone": "Europe/London"})
    assert reply["header"]["timezone"] == "Europe/London"  # sent as Europe%2FLondon
    assert [item["id"] for item in reply["body"]] == ["item1", "item2"]
    async with client.get("/__standin/requests") as resp:
        seen = await resp.json()
    assert seen[0]["extra"]["arguments"] == {"id": "item1"}
    assert [s["principal"] for s in seen] == ["user", "application"]


async def test_fault_routes_need_no_signature(client: Client) -> None:
    async with client.get("/__fault/empty/502") as resp:
        assert resp.status == 502


async def test_wrong_signature_is_status_3(client: Client) -> None:
    reply = await call(client, "item/view", {"id": "item1"}, key="not-the-psk")
    assert reply["header"]["status"] == 3 and reply["body"] is None
    reply = await call(client, "item/view", {"id": "item1"}, actor=("user", "ghost", "psk"))
    assert reply["header"]["status"] == 3
    counted = await stats(client)
    assert counted["auth_failures"] == 2 and counted["signature_invalid"] == 2


async def test_stale_timestamp_is_status_2(client: Client) -> None:
    reply = await call(client, "item/view", {"id": "item1"}, timestamp=int(time.time()) - 301)
    assert reply["header"]["status"] == 2
    assert (await stats(client))["timestamp_invalid"] == 1


async def test_item_not_found_inside_http_200(client: Client) -> None:
    reply = await call(client, "item/view", {"id": "nope"})
    assert reply["header"]["status"] == 120 and reply["body"] is None


async def test_action_errors(client: Client) -> None:
    async def status(action: str, args: dict[str, str] | None = None, **kw: Any) -> int:
        code: int = (await call(client, action, args, **kw))["header"]["status"]
        return code

    assert await status("item/create", {"title": "T", "public": "1", "tags": "a,b"}) == 0
    assert await status("item/create", {"public": "1"}) == 6
    assert await status("item/create", {"title": "T", "public": "yes"}) == 6
    assert await status("item/view", {"id": "item1", "extra": "x"}) == 7
    assert await status("user/create", {"username": "alice"}) == 316
    assert await status("user/create", {"username": "carol"}) == 0
    assert await status("account/delete") == 4
    assert await status("item/fly") == 5
    assert await status("item/crash") == 1
    assert await status("item/list", params={"timezone": "Bogus/Zone"}) == 9
    assert await status("item/list", params={"account": "a", "customer": "c"}) == 6
    await client.post("/__standin/settings", json={"readonly": True})
    assert await status("item/list") == 10


async def test_repeated_invalid_auth_is_rate_limited(aiohttp_client: MakeClient) -> None:
    client = await aiohttp_client(create_app({"invalid_auth_limit": 2}))
    for _ in range(2):
        assert (await call(client, "item/list", key="bad"))["header"]["status"] == 3
    assert (await call(client, "item/list"))["header"]["status"] == 8


async def test_session_login_call_and_expiry(client: Client) -> None:
    init = await call(
        client, "session/initialize", {"user": "alice", "userip": "127.0.0.1"}, actor=APP
    )
    assert init["header"]["status"] == 0 and init["body"]["needsv2hash"] is False
    challenge, salt = init["body"]["challenge"], init["body"]["salt"]
    assert salt.startswith("$2y$04$") and len(salt) == 29
    response = generate_password_response("alice-password", salt, challenge)
    created = await call(
        client, "session/create", {"challenge": challenge, "response": response}, actor=APP
    )
    assert created["header"]["status"] == 0
    session = created["body"]
    assert session["timeout"] == 3600 and session["user"]["username"] == "alice"

    sid_key = (session["id"], session["key"])
    reply = await call(client, "item/view", {"id": "item2"}, actor=APP, session=sid_key)
    assert reply["header"]["status"] == 0
    assert 3590 <= reply["header"]["sessiontimeout"] <= 3600
    async with client.get("/__standin/requests") as resp:
        assert (await resp.json())[-1]["principal"] == "alice"

    await client.post("/__standin/expire_sessions")
    reply = await call(client, "item/view", {"id": "item2"}, actor=APP, session=sid_key)
    assert reply["header"]["status"] == 282
    assert (await stats(client))["session_not_found"] == 1


async def test_session_login_with_wrong_password_fails(client: Client) -> None:
    init = await call(client, "session/initialize", {"user": "alice", "userip": "::1"}, actor=APP)
    challenge = init["body"]["challenge"]
    reply = await call(
        client, "session/create", {"challenge": challenge, "response": "0" * 64}, actor=APP
    )
    assert reply["header"]["status"] == 3
    # a user actor may not log users in
    assert (await call(client, "session/initialize", {"user": "a", "userip": "x"}))["header"][
        "status"
    ] == 4


async def login(
    client: Client, user: str, password: str, *, v2hash: str | None = None, salt: str = ""
) -> tuple[dict[str, Any], dict[str, Any]]:
    init = await call(client, "session/initialize", {"user": user, "userip": "::1"}, actor=APP)
    body = init["body"]
    args = {"challenge": body["challenge"],
            "response": generate_password_response(password, salt or body["salt"],
                                                   body["challenge"])}  # fmt: skip
    if v2hash is not None:
        args["v2hash"] = v2hash
    return body, await call(client, "session/create", args, actor=APP)


async def test_the_standin_keeps_only_h(client: Client) -> None:
    await login(client, "alice", "alice-password")
    from gateway.standins.streamone import STATE

    state = client.app[STATE]  # type: ignore[index]
    assert list(state.hashes) == ["alice"]
    assert state.hashes["alice"].startswith("$2y$04$") and len(state.hashes["alice"]) == 60
    assert "alice-password" not in repr(state)


async def test_a_v2_user_is_asked_for_the_v2_hash_and_converted(
    aiohttp_client: MakeClient,
) -> None:
    client = await aiohttp_client(create_app({"v2_passwords": {"bob": "bob-pw"}}))
    md5 = hashlib.md5(b"bob-pw").hexdigest()
    init, created = await login(client, "bob", "bob-pw")  # no v2hash
    assert init["needsv2hash"] is True and created["header"]["status"] == 3
    init, created = await login(client, "bob", "bob-pw", v2hash="0" * 32)
    assert created["header"]["status"] == 3
    init, created = await login(client, "bob", "bob-pw", v2hash=md5)
    assert init["needsv2hash"] is True and created["header"]["status"] == 0
    init, created = await login(client, "bob", "bob-pw")  # converted: H from now on
    assert init["needsv2hash"] is False and created["header"]["status"] == 0
    assert (await stats(client))["v2_converted"] == 1


async def test_wrong_password_and_unknown_user_are_status_3(client: Client) -> None:
    _, created = await login(client, "alice", "not-her-password")
    assert created["header"]["status"] == 3
    init, created = await login(client, "nobody", "x")
    assert init["needsv2hash"] is False and init["salt"].startswith("$2y$")  # tells nothing
    assert created["header"]["status"] == 3
    assert (await stats(client))["login_failures"] == 2


async def test_a_stored_hash_of_another_scheme_hands_out_its_salt(
    aiohttp_client: MakeClient,
) -> None:
    client = await aiohttp_client(create_app({"hashes": {"carol": "$6$saltsalt$abcdef"}}))
    init = await call(client, "session/initialize", {"user": "carol", "userip": "::1"}, actor=APP)
    assert init["body"]["salt"] == "$6$saltsalt$"


@pytest.mark.parametrize(
    "arguments",
    [
        [("title", "two words"), ("tags", "~tilde,x y")],
        [("title", "Café ☕ 日本"), ("tags", "")],
        [("title", "")],
    ],
)
async def test_the_signature_is_checked_over_the_raw_bytes_in_the_sdks_order(
    client: Client, arguments: list[tuple[str, str]]
) -> None:
    """The PHP SDK's order (not sorted) and encoding (+, %7E) verify as received;
    the same arguments spelled differently (``%20``, a raw ``~``) do not."""
    path = "/api/item/create"
    query, body = signed_call(path, USER, arguments, int(time.time()))
    assert query.startswith("api=3&format=json&authentication_type=user&timestamp=")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    async def status(sent_body: bytes) -> int:
        url = URL(f"{path}?{query}", encoded=True)
        async with client.post(url, data=sent_body, headers=headers) as resp:
            return int((await resp.json())["header"]["status"])

    assert await status(body) in (0, 6)  # authenticated (6: an empty title)
    async with client.get("/__standin/requests") as resp:
        seen = (await resp.json())[-1]
    assert seen["extra"]["raw_query"] == query
    respelled = body.replace(b"+", b"%20").replace(b"%7E", b"~")
    if respelled != body:
        assert await status(respelled) == 3  # same arguments, other bytes: refused
