"""Credentials the gateway obtains at run time are remembered by the masker the
auth was given (``AuthIO.masker``: the app's ``gateway.core.secrets.SecretMasker``),
so logs and error bodies never show them: each flow is driven by hand, then that
masker must hide what it obtained."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from gateway.config_reader import Secret
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.core.secrets import REDACTED, SecretMasker
from gateway.server.stores import MemoryStore
from gateway.upstreams.base import AuthIO
from gateway.upstreams.beeswax import BeeswaxAuthSettings, SessionCookieAuth
from gateway.upstreams.buzzstream_tokens import (
    Pending,
    load_user_token,
    parse_token_reply,
    save_pending,
    save_user_token,
    take_pending,
)
from gateway.upstreams.streamone import SignedQueryAuth, StreamOneAuthSettings
from gateway.upstreams.streamone_session import SessionSettings
from gateway.upstreams.tokens import (
    ClientCredentialsSettings,
    ClientCredentialsToken,
    FileToken,
    FileTokenSettings,
)
from tests.upstreams.flows import answer, signed


def fresh(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}"


@pytest.fixture
def masker() -> SecretMasker:
    return SecretMasker()


def assert_masked(masker: SecretMasker, *values: str) -> None:
    for value in values:
        assert masker.mask(f"x {value} y") == f"x {REDACTED} y", value


def envelope(body: object) -> UpstreamReply:
    data = {"header": {"status": 0, "statusmessage": "OK"}, "body": body}
    return UpstreamReply(200, (), json.dumps(data).encode())


async def test_a_granted_client_credentials_token_is_masked(masker: SecretMasker) -> None:
    token = fresh("granted")
    assert masker.mask(token) == token

    async def grant(request: OutboundRequest) -> UpstreamReply:
        body = {"access_token": token, "token_type": "Bearer", "expires_in": 60}
        return UpstreamReply(200, (), json.dumps(body).encode())

    settings = ClientCredentialsSettings(
        "http://auth.test/token", "client", Secret("client-secret"), None,
        "client_secret_basic", 30.0,
    )  # fmt: skip
    provider = ClientCredentialsToken(settings)
    got = await provider.token(AuthIO("bizzstream", grant, masker=masker))
    assert got.reveal() == token
    assert_masked(masker, token)


async def test_a_token_read_from_the_token_file_is_masked(
    tmp_path: Path, masker: SecretMasker
) -> None:
    token = fresh("file")
    path = tmp_path / "token"
    path.write_text(token + "\n")
    assert masker.mask(token) == token
    provider = FileToken(FileTokenSettings(str(path), check_interval=1.0))
    assert (await provider.token(AuthIO("bizzstream", masker=masker))).reveal() == token
    assert_masked(masker, token)


async def test_every_beeswax_cookie_value_kept_is_masked(masker: SecretMasker) -> None:
    session, remember, rotated = fresh("session"), fresh("remember"), fresh("rotated")

    async def login(request: OutboundRequest) -> UpstreamReply:
        cookies = (("Set-Cookie", f"k_buzz_cookie={session}; Path=/"),
                   ("Set-Cookie", f"k_buzz_remember={remember}; Max-Age=60"))  # fmt: skip
        return UpstreamReply(200, cookies, b'{"success": "true"}')

    settings = BeeswaxAuthSettings("ops@example.com", Secret("pw"))
    io = AuthIO("beeswax", login, masker=masker)
    credential = await SessionCookieAuth(settings, io).bind(None, None)
    request = OutboundRequest("GET", "http://bees.test", "/rest/advertiser")
    flow, _ = await signed(credential, request)
    assert_masked(masker, session, remember)
    assert masker.mask(rotated) == rotated
    await answer(flow, UpstreamReply(200, (("Set-Cookie", f"k_buzz_cookie={rotated}"),)))
    assert_masked(masker, rotated)


async def test_a_streamone_session_key_is_masked(masker: SecretMasker) -> None:
    key = fresh("skey")

    async def upstream(request: OutboundRequest) -> UpstreamReply:
        if request.path.endswith("session/initialize"):
            salt = "$2y$04$KUPxtN.Lr5dN.6hiiLssre"
            return envelope({"challenge": "c", "salt": salt, "needsv2hash": False})
        return envelope({"id": "sid", "key": key, "timeout": 600, "user": "alice"})

    session = SessionSettings("alice", Secret("alice-pw"), "127.0.0.1", 60.0)
    settings = StreamOneAuthSettings("application", "app", Secret("apppsk"), session)
    io = AuthIO("streamone", upstream, masker=masker)
    credential = await SignedQueryAuth(settings, io).bind(None, None)
    await signed(credential, OutboundRequest("POST", "http://so.test", "/api/item/view"))
    assert_masked(masker, key)


async def test_buzzstream_token_secrets_from_replies_and_the_store_are_masked(
    masker: SecretMasker,
) -> None:
    request_secret, access_secret = fresh("rsecret"), fresh("asecret")
    stored_secret, pending_secret = fresh("ssecret"), fresh("psecret")
    reply = f"oauth_token=rt&oauth_token_secret={request_secret}&oauth_callback_confirmed=true"
    parse_token_reply(UpstreamReply(200, (), reply.encode()), "request token", "buzzstream", masker)
    reply = f"oauth_token=at&oauth_token_secret={access_secret}"
    parse_token_reply(UpstreamReply(200, (), reply.encode()), "access token", "buzzstream", masker)
    assert_masked(masker, request_secret, access_secret)

    # Written by another replica: this process learns them only from the store.
    store = MemoryStore()
    await save_user_token(store, "bob", "at2", stored_secret)
    await save_pending(store, "rt2", "carol", pending_secret)
    assert masker.mask(stored_secret) == stored_secret
    assert masker.mask(pending_secret) == pending_secret
    assert await load_user_token(store, "bob", masker) == ("at2", stored_secret)
    assert await take_pending(store, "rt2", masker) == Pending("carol", pending_secret)
    assert_masked(masker, stored_secret, pending_secret)
