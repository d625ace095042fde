"""BuzzStream OAuth 1.0a auth, driven by hand and checked by the stand-in's own
verifier (``gateway.standins.oauth1_verify``, stdlib only, no shared code)."""

from __future__ import annotations

import itertools
import json
from urllib.parse import urlsplit

import pytest

from gateway.config_reader import Secret
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.errors import InvalidRequest, UpstreamAuthFailed
from gateway.server.stores import MemoryStore
from gateway.standins.oauth1_verify import (
    AccessToken,
    OAuthRefused,
    SignedRequest,
    TokenStore,
    authenticate,
    base_string_uri,
)
from gateway.upstreams.buzzstream import BuzzStreamAuthSettings, OAuth1Auth, TokenPair
from gateway.upstreams.buzzstream_tokens import (
    Pending,
    access_token_request,
    authorize_location,
    load_user_token,
    parse_token_reply,
    request_token_request,
    save_pending,
    save_user_token,
    take_pending,
)
from tests.upstreams.flows import signed

NOW = 1_700_000_000
CONSUMERS = {"ck": "cs"}
FORM = "application/x-www-form-urlencoded"


def make(**kw: object) -> OAuth1Auth:
    counter = itertools.count()
    settings = BuzzStreamAuthSettings("ck", Secret("cs"), **kw)  # type: ignore[arg-type]
    return OAuth1Auth(settings, clock=lambda: NOW, nonce=lambda: f"nonce{next(counter)}")


def verify(request: OutboundRequest, tokens: TokenStore | None = None, kind: str = "access") -> str:
    url = urlsplit(request.base_url + request.path)
    signed = SignedRequest(
        method=request.method,
        uri=base_string_uri(url.scheme, url.hostname or "", url.port, url.path),
        raw_query=request.query,
        authorization=request.header("Authorization") or "",
        content_type=request.header("Content-Type") or "",
        body=request.body or b"",
    )
    return authenticate(signed, CONSUMERS, 300, tokens or TokenStore(), kind, NOW).principal


def call(method: str, query: str = "", ctype: str = "", body: bytes = b"") -> OutboundRequest:
    headers = (("Content-Type", ctype),) if ctype else ()
    return OutboundRequest(method, "http://127.0.0.1:9103", "/v1/websites", query, headers, body)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
async def test_every_method_is_signed_two_legged(method: str) -> None:
    credential = await make().bind(None, None)
    _, prepared = await signed(credential, call(method, "max_results=2&q=a+b%2Fc"))
    assert verify(prepared) == "ck" == credential.account


async def test_a_form_body_is_signed_and_a_json_body_is_not() -> None:
    credential = await make().bind(None, None)
    _, form = await signed(credential, call("POST", "", FORM, b"url=https%3A%2F%2Fa&name=A+B"))
    assert credential.needs_body(form)
    assert verify(form) == "ck"
    tampered = OutboundRequest(**{**form.__dict__, "body": b"url=https%3A%2F%2Fevil&name=A+B"})
    with pytest.raises(OAuthRefused):
        verify(tampered)
    js = call("POST", "", "application/json", b'{"url": "x"}')
    assert not credential.needs_body(js)
    _, prepared = await signed(credential, js)
    assert verify(OutboundRequest(**{**prepared.__dict__, "body": b'{"other": 1}'})) == "ck"


async def test_each_attempt_gets_a_fresh_nonce() -> None:
    credential = await make().bind(None, None)
    _, first = await signed(credential, call("POST"))
    _, second = await signed(credential, call("POST"))
    assert first.header("Authorization") != second.header("Authorization")
    tokens = TokenStore()
    verify(first, tokens)
    verify(second, tokens)  # a replay of the same call is accepted: it was signed again


async def test_unsignable_form_body_is_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        await signed(await make().bind(None, None), call("POST", "", FORM, b"a=\xff"))


async def test_user_credentials_come_from_config_then_store_then_shared() -> None:
    tokens = TokenStore()
    tokens.access_tokens["pinned"] = AccessToken("pinned", "ps", "ck", "Pinned")
    tokens.access_tokens["stored"] = AccessToken("stored", "ss", "ck", "Stored")
    auth = make(users={"alice": TokenPair("pinned", Secret("ps"))})
    store = MemoryStore()
    await save_user_token(store, "bob", "stored", "ss")
    await save_user_token(store, "alice", "stored", "ss")  # config wins over the store
    principals = {}
    for user in ("alice", "bob", "carol", None):
        credential = await auth.bind(user, store)
        _, prepared = await signed(credential, call("GET"))
        principals[user] = (verify(prepared, tokens), credential.account)
    assert principals == {
        "alice": ("Pinned", "user:alice"),
        "bob": ("Stored", "user:bob"),
        "carol": ("ck", "ck"),
        None: ("ck", "ck"),
    }


async def test_three_legged_requests_verify_and_the_pending_token_is_used_once() -> None:
    tokens = TokenStore()
    consumer = make().consumer
    start = request_token_request(
        consumer, "http://127.0.0.1:9103", "/v1/requestToken", "http://gw/cb?x=1",
        nonce="n1", timestamp=NOW,
    )  # fmt: skip
    assert verify(start, tokens, kind="consumer") == "ck"
    rt = tokens.new_request_token("ck", "http://gw/cb?x=1")
    rt.user, rt.verifier = "alice", "v123"
    exchange = access_token_request(
        consumer, "http://127.0.0.1:9103", "/v1/accessToken", rt.token, rt.secret, "v123",
        nonce="n2", timestamp=NOW,
    )  # fmt: skip
    verify(exchange, tokens, kind="request")
    store = MemoryStore()
    await save_pending(store, "rt", "alice", "sec")
    assert await take_pending(store, "rt") == Pending("alice", "sec")
    assert await take_pending(store, "rt") is None
    assert await load_user_token(store, "nobody") is None
    assert authorize_location("http://h/v1", "/oauth_verification", "a b") == (
        "http://h/v1/oauth_verification?oauth_token=a+b"
    )
    assert authorize_location("http://h/v1", "https://app/ok?x=1", "t").endswith(
        "?x=1&oauth_token=t"
    )


def test_token_replies_are_parsed_or_refused() -> None:
    good = UpstreamReply(
        200, (), b"oauth_token=t&oauth_token_secret=s&oauth_callback_confirmed=true"
    )
    assert parse_token_reply(good, "request token", "buzzstream") == ("t", "s")
    with pytest.raises(UpstreamAuthFailed):
        parse_token_reply(UpstreamReply(401, (), json.dumps({"message": "no"}).encode()), "x", "b")
