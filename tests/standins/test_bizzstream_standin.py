"""The BizzStream stand-in checks auth and answers the way the spec says."""

from __future__ import annotations

import base64
import json
import select
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

Client = TestClient[Any, Any]
ClientFactory = Callable[[dict[str, Any] | None], Awaitable[Client]]  # see conftest.py

AUTH = {"Authorization": "Bearer standin-bizz-token", "environment-id": "env-standin"}
DOCS = "/api/v1/documents"
ERROR_KEYS = {"status", "error", "description", "message", "userDescription"}


async def _error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status
    body: dict[str, Any] = await resp.json()
    assert body["status"] == "error" and body["error"] == code
    assert ERROR_KEYS <= set(body)
    assert ("validationErrors" in body) == (400 <= status < 500)
    return body


async def _stats(client: Client) -> dict[str, int]:
    resp = await client.get("/__standin/stats")
    stats: dict[str, int] = await resp.json()
    return stats


async def test_right_token_accepted(bizz: Client) -> None:
    resp = await bizz.get(DOCS, params={"ddName": "projects"}, headers=AUTH)
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "documents": []}
    seen = await (await bizz.get("/__standin/requests")).json()
    assert seen[-1]["auth_ok"] is True
    assert seen[-1]["principal"] == "standin-bizz-token"
    assert seen[-1]["answered"] is not None


async def test_wrong_or_missing_token_401(bizz: Client) -> None:
    bad = {**AUTH, "Authorization": "Bearer nope"}
    await _error(await bizz.get(DOCS, params={"ddName": "x"}, headers=bad), 401, "unauthorized")
    no_auth = {"environment-id": "env-standin"}
    await _error(await bizz.get(DOCS, params={"ddName": "x"}, headers=no_auth), 401, "unauthorized")
    basic = {**AUTH, "Authorization": "Basic standin-bizz-token"}
    await _error(await bizz.get(DOCS, params={"ddName": "x"}, headers=basic), 401, "unauthorized")
    assert (await _stats(bizz))["auth_failures"] == 3
    seen = await (await bizz.get("/__standin/requests")).json()
    assert [s["auth_error"] for s in seen] == ["unauthorized"] * 3


async def test_token_expired(bizz_factory: ClientFactory) -> None:
    client = await bizz_factory({"expired_tokens": ["old-token"]})
    headers = {**AUTH, "Authorization": "Bearer old-token"}
    await _error(
        await client.get(DOCS, params={"ddName": "x"}, headers=headers), 401, "token_expired"
    )
    stats = await _stats(client)
    assert stats["token_expired"] == 1 and "auth_failures" not in stats
    # a token can be expired at run time through the settings route
    await client.post("/__standin/settings", json={"expired_tokens": ["standin-bizz-token"]})
    await _error(await client.get(DOCS, params={"ddName": "x"}, headers=AUTH), 401, "token_expired")


async def test_wrong_or_missing_environment_403(bizz: Client) -> None:
    wrong = {**AUTH, "environment-id": "env-other"}
    await _error(await bizz.get(DOCS, params={"ddName": "x"}, headers=wrong), 403, "forbidden")
    missing = {"Authorization": AUTH["Authorization"]}
    await _error(await bizz.get(DOCS, params={"ddName": "x"}, headers=missing), 403, "forbidden")


async def test_client_credentials_grant_with_basic_auth(bizz: Client) -> None:
    basic = base64.b64encode(b"standin-client:standin-client-secret").decode()
    resp = await bizz.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    grant = await resp.json()
    assert grant["token_type"] == "Bearer" and grant["expires_in"] == 3600
    headers = {**AUTH, "Authorization": f"Bearer {grant['access_token']}"}
    assert (await bizz.get(DOCS, params={"ddName": "x"}, headers=headers)).status == 200
    assert (await _stats(bizz))["token_grants"] == 1


async def test_client_credentials_grant_with_form_fields(bizz_factory: ClientFactory) -> None:
    client = await bizz_factory({"token_ttl": 0})
    form = {
        "grant_type": "client_credentials",
        "client_id": "standin-client",
        "client_secret": "standin-client-secret",
    }
    grant = await (await client.post("/oauth/token", data=form)).json()
    headers = {**AUTH, "Authorization": f"Bearer {grant['access_token']}"}
    # token_ttl 0: the minted token is already past its lifetime
    await _error(
        await client.get(DOCS, params={"ddName": "x"}, headers=headers), 401, "token_expired"
    )


async def test_grant_rejects_wrong_client_and_grant_type(bizz: Client) -> None:
    basic = base64.b64encode(b"standin-client:wrong").decode()
    resp = await bizz.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert resp.status == 401 and await resp.json() == {"error": "invalid_client"}
    assert "WWW-Authenticate" in resp.headers
    form = {"client_id": "standin-client", "client_secret": "standin-client-secret"}
    resp = await bizz.post("/oauth/token", data={**form, "grant_type": "password"})
    assert resp.status == 400 and await resp.json() == {"error": "unsupported_grant_type"}
    assert (await _stats(bizz))["token_grant_failures"] == 2


async def test_missing_dd_name_validation_error(bizz: Client) -> None:
    body = await _error(await bizz.get(DOCS, headers=AUTH), 400, "validation_error")
    assert body["validationErrors"] == [{"field": "ddName", "message": '"ddName" is required'}]


async def test_non_object_body_is_the_spec_example(bizz: Client) -> None:
    resp = await bizz.post(DOCS, params={"ddName": "x"}, json=[1, 2], headers=AUTH)
    assert resp.status == 400
    assert await resp.json() == {
        "status": "error",
        "error": "validation_error",
        "description": 'Body error: "value" must be of type object',
        "message": "The data submitted is not in the expected format.",
        "userDescription": "Looks like there's an issue with the data you provided. "
        "Please double-check the input and try again.",
        "validationErrors": [],
    }


async def test_malformed_options_and_query(bizz: Client) -> None:
    params = {"ddName": "x", "options": "{not json"}
    body = await _error(await bizz.get(DOCS, params=params, headers=AUTH), 400, "validation_error")
    assert body["validationErrors"][0]["field"] == "options"
    params = {"ddName": "x", "query": '{"a": {"$bogus": 1}}'}
    body = await _error(await bizz.get(DOCS, params=params, headers=AUTH), 400, "validation_error")
    assert body["validationErrors"][0]["field"] == "query"


async def test_document_lifecycle(bizz: Client) -> None:
    ids = []
    for n, ext in [(3, "c"), (1, "a"), (2, "b")]:
        resp = await bizz.post(
            DOCS, params={"ddName": "p"}, json={"n": n, "externalId": ext, "tag": "t"}, headers=AUTH
        )
        assert resp.status == 201
        doc = (await resp.json())["document"]
        ids.append(doc["_id"])
    options = json.dumps({"sort": {"n": -1}, "skip": 1, "limit": 1, "fields": {"n": 1}})
    resp = await bizz.get(DOCS, params={"ddName": "p", "options": options}, headers=AUTH)
    assert (await resp.json())["documents"] == [{"_id": ids[2], "n": 2}]
    query = json.dumps({"n": {"$gte": 2}, "tag": "t"})
    resp = await bizz.get(DOCS, params={"ddName": "p", "query": query}, headers=AUTH)
    assert sorted(d["n"] for d in (await resp.json())["documents"]) == [2, 3]
    resp = await bizz.get(DOCS, params={"ddName": "p", "externalId": "a"}, headers=AUTH)
    assert [d["n"] for d in (await resp.json())["documents"]] == [1]
    target = {"ddName": "p", "_id": ids[0]}
    resp = await bizz.patch(DOCS, params=target, json={"n": 30}, headers=AUTH)
    assert (await resp.json())["document"]["externalId"] == "c"
    resp = await bizz.put(DOCS, params=target, json={"n": 31}, headers=AUTH)
    assert (await resp.json())["document"] == {"n": 31, "_id": ids[0]}
    assert (await bizz.delete(DOCS, params=target, headers=AUTH)).status == 200
    await _error(await bizz.get(DOCS, params=target, headers=AUTH), 404, "not_found")
    await _error(await bizz.delete(DOCS, params=target, headers=AUTH), 404, "not_found")
    body = await _error(
        await bizz.put(DOCS, params={"ddName": "p"}, json={}, headers=AUTH), 400, "validation_error"
    )
    assert body["validationErrors"] == [{"field": "_id", "message": '"_id" is required'}]


async def test_unknown_path_and_deliberate_500(bizz: Client) -> None:
    await _error(await bizz.get("/api/v1/nothing", headers=AUTH), 404, "not_found")
    await _error(await bizz.get("/api/v1/fail/500", headers=AUTH), 500, "internal_error")
    # auth is checked before routing
    await _error(await bizz.get("/api/v1/nothing"), 401, "unauthorized")


async def test_fault_routes(bizz: Client) -> None:
    resp = await bizz.get("/__fault/sleep", params={"seconds": "0.05"})
    assert await resp.json() == {"slept": 0.05}
    resp = await bizz.get("/__fault/html500")
    assert resp.status == 500 and resp.content_type == "text/html"
    assert "Traceback" in await resp.text()
    resp = await bizz.get("/__fault/text/503")
    assert resp.status == 503 and await resp.text() == "upstream says 503"
    assert resp.content_type == "text/plain"
    resp = await bizz.get("/__fault/truncated")
    assert resp.status == 500 and resp.content_type == "application/json"
    assert await resp.read() == b'{"status": "err'
    resp = await bizz.delete("/__fault/empty/502")
    assert resp.status == 502 and await resp.read() == b""
    resp = await bizz.post(
        "/__fault/echo?a=1&b=%20", data=b"raw \x00 body", headers={"X-Thing": "v"}
    )
    echo = await resp.json()
    assert echo["method"] == "POST" and echo["path"] == "/__fault/echo"
    assert echo["query_string"] == "a=1&b=%20"
    assert echo["headers"]["X-Thing"] == "v"
    assert base64.b64decode(echo["body_base64"]) == b"raw \x00 body"
    resp = await bizz.get("/__fault/big")
    assert resp.content_type == "application/octet-stream"
    body = await resp.read()
    assert len(body) == 5 * 1024 * 1024 and set(body) == {ord("x")}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_launcher_serves_all_four(sig: signal.Signals) -> None:
    """``python -m gateway.standins`` prints one JSON line of base URLs and stops cleanly."""
    ports = [f"--{name}-port=0" for name in ("bizzstream", "beeswax", "buzzstream", "streamone")]
    settings = json.dumps({"beeswax": {"session_ttl": 7}})
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.standins", *ports, "--settings", settings],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the launcher printed nothing"
        urls = json.loads(proc.stdout.readline())
        assert sorted(urls) == ["beeswax", "bizzstream", "buzzstream", "streamone"]
        assert urls["buzzstream"].endswith("/v1")
        for name, base in urls.items():
            origin = str(URL(base).origin())
            with urllib.request.urlopen(f"{origin}/__standin/stats", timeout=10) as resp:
                assert resp.status == 200, name
                assert isinstance(json.load(resp), dict)
        post = urllib.request.Request(f"{urls['beeswax']}/__standin/settings", method="POST")
        with urllib.request.urlopen(post, timeout=10) as resp:
            assert json.load(resp)["session_ttl"] == 7
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
        assert proc.stdout.read() == ""  # exactly one line on stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
