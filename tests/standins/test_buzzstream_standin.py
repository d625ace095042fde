"""The BuzzStream stand-in: OAuth 1.0a verification, the 3-legged flow, suspensions.

Requests are signed with the small helper below, written from RFC 5849 on its
own (it shares no code with the stand-in's verifier or the gateway's signer).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from gateway.standins import oauth1_verify as ov
from gateway.standins.buzzstream import create_app

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

KEY, SECRET = "standin-consumer-key", "standin-consumer-secret"


def _enc(value: str) -> str:
    return quote(value, safe="~")


def oauth_header(
    method: str,
    url: URL,
    *,
    token: tuple[str, str] | None = None,
    form: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
    timestamp: int | None = None,
    nonce: str | None = None,
    consumer: tuple[str, str] = (KEY, SECRET),
) -> str:
    oauth = {
        "oauth_consumer_key": consumer[0],
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "oauth_nonce": nonce or secrets.token_hex(8),
        "oauth_version": "1.0",
        **(extra or {}),
    }
    if token:
        oauth["oauth_token"] = token[0]
    pairs = [*url.query.items(), *oauth.items(), *(form or {}).items()]
    normalized = "&".join(f"{k}={v}" for k, v in sorted((_enc(k), _enc(v)) for k, v in pairs))
    base_uri = f"{url.scheme}://{url.host}:{url.port}{url.path}"
    base = f"{method}&{_enc(base_uri)}&{_enc(normalized)}"
    key = f"{_enc(consumer[1])}&{_enc(token[1] if token else '')}"
    digest = hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()
    oauth["oauth_signature"] = base64.b64encode(digest).decode()
    return "OAuth " + ", ".join(f'{k}="{_enc(v)}"' for k, v in oauth.items())


async def signed(
    client: Client, method: str, path: str, *, json: Any = None, **kw: Any
) -> tuple[int, Any]:
    url = client.make_url(path)
    form = kw.get("form")
    headers = {"Authorization": oauth_header(method, url, **kw)}
    data = form if form is not None else None
    async with client.request(method, path, headers=headers, data=data, json=json) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()


@pytest.fixture
async def client(aiohttp_client: MakeClient) -> Client:
    return await aiohttp_client(create_app())


async def stats(client: Client) -> dict[str, int]:
    async with client.get("/__standin/stats") as resp:
        result: dict[str, int] = await resp.json()
        return result


# -- the verifier's pure parts, against the examples of RFC 5849 -------------


def test_rfc5849_section_3_4_1_base_string() -> None:
    header = (
        'OAuth realm="Example", oauth_consumer_key="9djdj82h48djs9d2", '
        'oauth_token="kkk9d7dh3k39sjv7", oauth_signature_method="HMAC-SHA1", '
        'oauth_timestamp="137131201", oauth_nonce="7d8f3e4a", '
        'oauth_signature="djosJKDKJSD8743243%2Fjdk33klY%3D"'
    )
    params = ov.parse_authorization_header(header)
    pairs = ov.request_parameters(
        "b5=%3D%253D&a3=a&c%40=&a2=r%20b", params, ov.FORM_CONTENT_TYPE, b"c2&a3=2+q"
    )
    uri = ov.base_string_uri("HTTP", "Example.com", 80, "/request")
    assert ov.signature_base_string("post", uri, pairs) == (
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q"
        "%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_"
        "key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m"
        "ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk"
        "9d7dh3k39sjv7"
    )


def test_rfc5849_section_1_2_signature() -> None:
    params = {
        "oauth_consumer_key": "dpf43f3p2l4k3l03",
        "oauth_token": "nnch734d00sl2jdk",
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": "137131202",
        "oauth_nonce": "chapoH",
    }
    pairs = ov.request_parameters("file=vacation.jpg&size=original", params, "", b"")
    uri = ov.base_string_uri("http", "photos.example.net", 80, "/photos")
    base = ov.signature_base_string("GET", uri, pairs)
    signature = ov.hmac_sha1_signature(base, "kd94hf93k423kf44", "pfkkdhi9sl3r4s00")
    assert signature == "MdpQcU8iPSUjWoN/UDMsK2sui9I="


def test_base_string_uri_keeps_non_default_port() -> None:
    assert ov.base_string_uri("https", "H.example", 443, "/v1") == "https://h.example/v1"
    assert ov.base_string_uri("http", "h", 8080, "/v1/x") == "http://h:8080/v1/x"


# -- accepted calls ----------------------------------------------------------


async def test_signed_get_with_query_is_accepted(client: Client) -> None:
    status, body = await signed(client, "GET", "/v1/websites?offset=1&max_results=1&expand=true")
    assert status == 200
    assert body["offset"] == 1 and body["max_results"] == 1 and body["numResults"] == 2
    assert body["list"][0]["url"] == "https://example.org"
    status, body = await signed(client, "GET", "/v1/websites")
    root = str(client.make_url("/v1"))  # like the real API: URIs under its own base URL
    assert body["list"] == [f"{root}/websites/1", f"{root}/websites/2"]


async def test_encoded_query_values_are_signed_decoded(client: Client) -> None:
    path = "/v1/tags?name=a%20b%2Fc&plus=%2B1&accent=%C3%A9&empty="
    assert (await signed(client, "GET", path))[0] == 200


async def test_fault_routes_need_no_signature(client: Client) -> None:
    async with client.get("/v1/__fault/text/503") as resp:
        assert (resp.status, await resp.text()) == (503, "upstream says 503")


async def test_signed_form_post_covers_the_body(client: Client) -> None:
    form = {"url": "https://new.example/a b", "name": "N&M"}
    status, body = await signed(client, "POST", "/v1/websites", form=form)
    assert status == 201 and body["url"] == "https://new.example/a b"
    # The same body with a signature that did not cover it is refused.
    url = client.make_url("/v1/websites")
    headers = {"Authorization": oauth_header("POST", url)}
    async with client.post("/v1/websites", headers=headers, data=form) as resp:
        assert resp.status == 401
        assert (await resp.json())["message"] == "Invalid signature"


async def test_json_post_body_is_not_signed(client: Client) -> None:
    status, body = await signed(client, "POST", "/v1/people", json={"name": "Grace"})
    assert status == 201 and body["name"] == "Grace" and body["id"] == 2
    status, body = await signed(client, "GET", "/v1/people/2")
    assert (status, body["name"]) == (200, "Grace")


async def test_resources_and_canned_errors(client: Client) -> None:
    assert await signed(client, "POST", "/v1/websites", json={}) == (
        400,
        {"message": "url is required"},
    )
    assert await signed(client, "GET", "/v1/websites/99") == (404, {"message": "Not found"})
    root = str(client.make_url("/v1"))
    assert await signed(client, "GET", "/v1/websites/1/people") == (200, [f"{root}/people/1"])
    assert (await signed(client, "GET", "/v1/users/1"))[1]["name"] == "standin-user"
    assert await signed(client, "GET", "/v1/projects/forbidden") == (403, {"error": "Forbidden"})
    assert (await signed(client, "GET", "/v1/links/broken"))[0] == 500
    status, text = await signed(client, "GET", "/v1/tags/html")
    assert status == 502 and "<html>" in text
    assert (await signed(client, "GET", "/v1/tags/text"))[0] == 503
    status, body = await signed(client, "PUT", "/v1/tags/1", json={"name": "renamed"})
    assert (status, body["name"]) == (200, "renamed")
    assert (await signed(client, "DELETE", "/v1/tags/1"))[0] == 204
    assert (await signed(client, "GET", "/v1/tags/1"))[0] == 404


# -- refused calls -----------------------------------------------------------


async def test_wrong_signature_is_401(client: Client) -> None:
    status, body = await signed(client, "GET", "/v1/websites", consumer=(KEY, "wrong-secret"))
    assert (status, body) == (401, {"message": "Invalid signature"})
    async with client.get("/v1/websites") as resp:  # no Authorization header at all
        assert resp.status == 401
    counted = await stats(client)
    assert counted["auth_failures"] == 2 and counted["signature_invalid"] == 1


async def test_unknown_consumer_is_401(client: Client) -> None:
    status, body = await signed(client, "GET", "/v1/websites", consumer=("nobody", SECRET))
    assert (status, body) == (401, {"message": "Unknown consumer key"})


async def test_stale_timestamp_is_401(client: Client) -> None:
    status, body = await signed(client, "GET", "/v1/websites", timestamp=int(time.time()) - 301)
    assert (status, body) == (401, {"message": "Timestamp out of range"})
    assert (await stats(client))["timestamp_invalid"] == 1


async def test_reused_nonce_is_401(client: Client) -> None:
    now = int(time.time())
    assert (await signed(client, "GET", "/v1/tags", nonce="n1", timestamp=now))[0] == 200
    status, body = await signed(client, "GET", "/v1/tags", nonce="n1", timestamp=now)
    assert (status, body) == (401, {"message": "Nonce already used"})
    assert (await stats(client))["nonce_reused"] == 1


# -- 3-legged flow -----------------------------------------------------------


async def test_three_legged_flow(client: Client) -> None:
    callback = "http://app.example/callback?state=s1"
    status, text = await signed(
        client, "POST", "/v1/requestToken", extra={"oauth_callback": callback}
    )
    assert status == 200
    reply = parse_qs(text)
    assert reply["oauth_callback_confirmed"] == ["true"]
    request_token = (reply["oauth_token"][0], reply["oauth_token_secret"][0])

    page = f"/v1/oauth_verification?oauth_token={request_token[0]}&user=bob"
    async with client.get(page, allow_redirects=False) as resp:
        assert resp.status == 302
        location = urlsplit(resp.headers["Location"])
    back = parse_qs(location.query)
    assert location.netloc == "app.example" and back["state"] == ["s1"]
    assert back["oauth_token"] == [request_token[0]]
    verifier = back["verifier"][0]
    assert back["oauth_verifier"] == [verifier]

    # a wrong verifier is refused, then the right one is accepted
    status, _ = await signed(
        client,
        "POST",
        "/v1/accessToken",
        token=request_token,
        extra={"oauth_verifier": "nope"},
    )
    assert status == 401
    status, text = await signed(
        client,
        "POST",
        "/v1/accessToken",
        token=request_token,
        extra={"oauth_verifier": verifier},
    )
    assert status == 200
    reply = parse_qs(text)
    access = (reply["oauth_token"][0], reply["oauth_token_secret"][0])

    assert (await signed(client, "GET", "/v1/projects", token=access))[0] == 200
    assert (await signed(client, "GET", "/v1/projects"))[0] == 200  # 2-legged
    status, body = await signed(client, "GET", "/v1/projects", token=("bogus", "x"))
    assert (status, body) == (401, {"message": "Unknown token"})
    async with client.get("/__standin/requests") as resp:
        seen = await resp.json()
    assert [s["principal"] for s in seen[-3:-1]] == ["bob", KEY]


# -- the rate limit suspends, it never refuses -------------------------------


async def test_eleven_concurrent_calls_are_suspended_in_two_second_steps(
    client: Client,
) -> None:
    start = time.monotonic()

    async def one() -> float:
        status, _ = await signed(client, "GET", "/v1/websites")
        assert status == 200
        return time.monotonic() - start

    delays = sorted(await asyncio.gather(*(one() for _ in range(11))))
    assert all(d < 0.8 for d in delays[:5]), delays
    assert all(1.8 < d < 2.8 for d in delays[5:10]), delays
    assert 3.8 < delays[10] < 4.8, delays
    assert (await stats(client))["suspensions"] == 6
    async with client.get("/__standin/requests") as resp:
        steps = sorted(s["extra"]["suspended_steps"] for s in await resp.json())
    assert steps == [0] * 5 + [1] * 5 + [2]


# -- URIs under the stand-in's own base URL, duplicated protocol parameters ----


async def test_uris_follow_the_pinned_root_and_are_taken_back_in_bodies(
    aiohttp_client: MakeClient,
) -> None:
    client = await aiohttp_client(create_app({"api_root": "https://api.buzzstream.com/v1"}))
    status, body = await signed(client, "GET", "/v1/websites/1")
    assert (status, body["uri"]) == (200, "https://api.buzzstream.com/v1/websites/1")
    own = await aiohttp_client(create_app())
    root = str(own.make_url("/v1"))
    # A client that links a new person to a website by the URI it was given.
    status, body = await signed(
        own, "POST", "/v1/people", json={"name": "Grace", "website": f"{root}/websites/2"}
    )
    assert status == 201 and body["website"] == f"{root}/websites/2"
    assert await signed(own, "GET", "/v1/websites/2/people") == (200, [f"{root}/people/2"])


async def test_oauth_parameter_also_in_the_query_is_a_duplicate(client: Client) -> None:
    # RFC 5849 §3.2: a protocol parameter sent twice (header and query) is a 400.
    status, body = await signed(client, "GET", "/v1/websites?oauth_nonce=again")
    assert (status, body) == (400, {"message": "Duplicated OAuth parameter: oauth_nonce"})
