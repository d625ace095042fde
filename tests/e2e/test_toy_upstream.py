"""A toy fifth upstream, added in the tests alone, onboarded through the real gateway.

README's claim, "a new upstream is one module plus one registry line", for a
3-legged upstream (issue 11): ``tests/upstreams/toy.py`` (bearer auth, an
OAuth 2 authorization-code onboarding) is registered by putting its spec in
``REGISTRY`` and its section in the config, nothing else. The gateway app runs
in this process (so the registry entry reaches it) on a real loopback port, in
front of the toy's own stand-in (``toy_standin.py``) and a real Redis:
``/oauth/toy/start`` → the stand-in's approval → ``/oauth/toy/callback`` → a
proxied call carrying the user's token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import redis as redis_sync
import yaml
from aiohttp import web

from gateway.config import load_config
from gateway.server.app import create_app
from gateway.upstreams import REGISTRY
from tests.conftest import assert_problem
from tests.e2e.toy_standin import CLIENT_ID, CLIENT_SECRET, SHARED_TOKEN, ToyStandin
from tests.harness import free_port
from tests.upstreams import toy

CALLER = {"Authorization": "Bearer toy-caller-token"}
# The toy without an onboarding: a 2-legged upstream, for the 404 of its /oauth/ routes.
PLAIN = dataclasses.replace(toy.SPEC, name="plain", onboarding=None)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The one registry line, in the tests alone."""
    monkeypatch.setitem(REGISTRY, toy.NAME, toy.SPEC)
    monkeypatch.setitem(REGISTRY, PLAIN.name, PLAIN)
    yield


@dataclasses.dataclass
class Setup:
    gateway: str
    standin: ToyStandin
    http: aiohttp.ClientSession
    app: web.Application
    config: Path  # the config file, for a reload


@pytest.fixture
async def setup(
    registered: None, aiohttp_server: Any, redis_flushed: str, tmp_path: Path
) -> AsyncIterator[Setup]:
    standin = ToyStandin()
    toy_server = await aiohttp_server(standin.app())
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    auth = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "token": SHARED_TOKEN}
    section = {"base_url": str(toy_server.make_url("/v1")), "auth": auth}
    config = {
        "listen": f"127.0.0.1:{port}",
        "public_url": gateway,
        "token_store_key": "toy-store-key-0123456789",
        "redis": {"url": redis_flushed},
        "callers": {"tokens": [{"name": "toy-app", "token": "toy-caller-token", "users": "*"}]},
        "upstreams": {"toy": section, "plain": section},
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    app = create_app(load_config(path, {}))
    await aiohttp_server(app, port=port)
    async with aiohttp.ClientSession() as http:
        yield Setup(gateway, standin, http, app, path)


async def get(
    s: Setup, url: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    full = url if "://" in url else s.gateway + url
    async with s.http.get(full, headers=headers or {}, allow_redirects=False) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def onboard(s: Setup, user: str, toy_user: str, extra: str = "") -> tuple[int, bytes]:
    status, headers, body = await get(s, f"/oauth/toy/start?user={user}{extra}", CALLER)
    if status != 302:
        return status, body
    status, headers, _ = await get(s, headers["Location"] + f"&user={toy_user}")  # approval
    assert status == 302
    back = urlsplit(headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == s.gateway + "/oauth/toy/callback"
    status, _, body = await get(s, f"{back.path}?{back.query}")  # the browser: no caller token
    return status, body


async def whoami(s: Setup, user: str | None = None) -> str:
    headers = {**CALLER, **({"X-Gateway-User": user} if user else {})}
    status, _, body = await get(s, "/toy/whoami", headers)
    assert status == 200, body
    return str(json.loads(body)["principal"])


async def test_a_toy_upstream_is_onboarded_and_its_calls_carry_the_users_token(
    setup: Setup, redis_flushed: str
) -> None:
    s = setup
    assert await whoami(s, "alice") == "toy-shared"  # not onboarded yet: the shared token

    # 1. The app starts onboarding (caller-authenticated); the Location is the toy's approval.
    status, _, body = await get(s, "/oauth/toy/start?user=alice")
    assert assert_problem(body, 401)["code"] == "caller_unauthorized"
    status, headers, _ = await get(s, "/oauth/toy/start?user=alice", CALLER)
    assert status == 302
    approve = urlsplit(headers["Location"])
    query = parse_qs(approve.query)
    assert approve.path == "/v1/authorize"
    assert query["client_id"] == [CLIENT_ID] and query["response_type"] == ["code"]
    assert query["redirect_uri"] == [s.gateway + "/oauth/toy/callback"]

    # 2. The user approves at the toy; 3. the browser comes back; the code is exchanged.
    status, headers, _ = await get(s, headers["Location"] + "&user=toy-alice")
    back = urlsplit(headers["Location"])
    status, _, body = await get(s, f"{back.path}?{back.query}")
    assert status == 200, body
    assert json.loads(body) == {"status": "connected", "upstream": "toy", "user": "alice"}
    status, _, body = await get(s, f"{back.path}?{back.query}")  # the state is usable once
    assert assert_problem(body, 400)["code"] == "invalid_request"

    # 4. Proxied calls for alice carry her access token; others the shared one.
    s.standin.seen.clear()
    assert await whoami(s, "alice") == "toy-alice"
    assert await whoami(s, "bob") == "toy-shared"
    assert await whoami(s) == "toy-shared"
    alice_token = s.standin.seen[0]["token"]
    assert s.standin.tokens[alice_token] == "toy-alice" and alice_token != SHARED_TOKEN

    # Stored in Redis under the toy's prefix, encrypted: the token never in clear.
    client = redis_sync.Redis.from_url(redis_flushed)
    try:
        keys = client.keys("*oauth2:toy:user:alice")
        assert keys
        assert all(alice_token.encode() not in (client.get(k) or b"") for k in keys)
    finally:
        client.close()


async def test_the_generic_routes_keep_their_rules_for_the_toy(setup: Setup) -> None:
    s = setup
    assert await onboard(s, "carol", "toy-carol") == (
        200, b'{"status": "connected", "upstream": "toy", "user": "carol"}'
    )  # fmt: skip
    # A second onboarding of the same user: 409 unless replace=true.
    status, body = await onboard(s, "carol", "toy-carol-2")
    problem = assert_problem(body, 409)
    assert problem["code"] == "conflict" and problem["upstream"] == "toy"
    assert "already has a Toy token" in problem["detail"] and "replace=true" in problem["detail"]
    assert (await onboard(s, "carol", "toy-carol-2", "&replace=true"))[0] == 200
    assert await whoami(s, "carol") == "toy-carol-2"
    status, _, body = await get(s, "/metrics")
    assert 'gateway_oauth_token_replacements_total{upstream="toy"} 1.0' in body.decode()

    # The callback without its state and code, or with an unknown state: 400.
    status, _, body = await get(s, "/oauth/toy/callback?code=x")
    assert assert_problem(body, 400)["detail"] == "state and code are required"
    status, _, body = await get(s, "/oauth/toy/callback?code=x&state=never-issued")
    assert status == 400 and assert_problem(body, 400)["code"] == "invalid_request"


async def test_oauth_routes_of_an_upstream_without_onboarding_are_404(setup: Setup) -> None:
    s = setup
    for path in ("/oauth/plain/start?user=a", "/oauth/plain/callback?code=x&state=y"):
        status, _, body = await get(s, path, CALLER)
        problem = assert_problem(body, 404)
        assert problem["code"] == "unknown_upstream" and problem["upstream"] == "plain"
        assert "has no 3-legged onboarding" in problem["detail"]
    status, _, body = await get(s, "/oauth/nowhere/start?user=a", CALLER)
    assert status == 404
    problem = assert_problem(body, 404)
    assert problem["code"] == "unknown_upstream" and problem.get("upstream") is None
    assert await whoami(s) == "toy-shared"  # 2-legged, proxied as ever


async def together(s: Setup, targets: list[str]) -> list[tuple[int, bytes]]:
    """GET each target on a connection of its own, every request written once every
    connection is open: they reach the gateway together."""
    host, port = urlsplit(s.gateway).hostname, urlsplit(s.gateway).port
    streams = [await asyncio.open_connection(host, port) for _ in targets]
    for (_, writer), target in zip(streams, targets, strict=True):
        writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())

    async def answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[int, bytes]:
        data = await reader.read()
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    return await asyncio.gather(*(answer(r, w) for r, w in streams))


async def test_concurrent_callbacks_with_one_state_take_the_onboarding_once(setup: Setup) -> None:
    """The one-time handle is taken atomically: callbacks racing with the same state
    (a browser's double submit, or a leaked callback URL replayed at once) find the
    onboarding once; the others are refused before any token call reaches the upstream."""
    s = setup
    status, headers, _ = await get(s, "/oauth/toy/start?user=erin", CALLER)
    assert status == 302
    status, headers, _ = await get(s, headers["Location"] + "&user=toy-erin")  # approval
    back = urlsplit(headers["Location"])
    url = f"{back.path}?{back.query}"
    # Unknown states first, together: the gateway's Redis pool holds a connection each.
    warm = await together(s, [f"/oauth/toy/callback?state=warm{n}&code=x" for n in range(6)])
    assert [status for status, _ in warm] == [400] * 6
    results = await together(s, [url] * 6)
    assert sorted(status for status, _ in results) == [200, 400, 400, 400, 400, 400], results
    for status, body in results:
        if status != 200:
            problem = assert_problem(body, 400)
            assert problem["code"] == "invalid_request"
            assert "unknown, used or expired" in problem["detail"]
    assert await whoami(s, "erin") == "toy-erin"


async def test_a_path_that_only_ends_like_an_open_one_needs_a_caller_token(setup: Setup) -> None:
    """An encoded newline after an open path's end (``/healthz%0A``, ``/oauth/toy/callback%0A``)
    is not that path: aiohttp routes it to the proxy's catch-all, and caller authentication
    must guard it like any other proxied path (401 before anything else)."""
    s = setup
    for path in ("/healthz%0A", "/oauth/toy/callback%0A?state=x&code=y", "/problems%0A"):
        _, _, body = await get(s, path)
        assert assert_problem(body, 401)["code"] == "caller_unauthorized", path
        _, _, body = await get(s, path, CALLER)
        assert assert_problem(body, 404)["code"] == "unknown_upstream", path
