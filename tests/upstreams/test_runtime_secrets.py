"""Credentials the gateway obtains at run time are registered for masking
(``gateway.core.secrets``), so logs and error bodies never show them: each flow
is driven by hand, then ``mask_known`` must hide what it obtained."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from gateway.config_reader import Secret
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.core.secrets import REDACTED, mask_known
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


def assert_masked(*values: str) -> None:
    for value in values:
        assert mask_known(f"x {value} y") == f"x {REDACTED} y", value


def envelope(body: object) -> UpstreamReply:
    data = {"header": {"status": 0, "statusmessage": "OK"}, "body": body}
    return UpstreamReply(200, (), json.dumps(data).encode())


async def test_a_granted_client_credentials_token_is_masked() -> None:
    token = fresh("granted")
    assert mask_known(token) == token

    async def grant(request: OutboundRequest) -> UpstreamReply:
        body = {"access_token": token, "token_type": "Bearer", "expires_in": 60}
        return UpstreamReply(200, (), json.dumps(body).encode())

    settings = ClientCredentialsSettings(
        "http://auth.test/token", "client", Secret("client-secret"), None,
        "client_secret_basic", 30.0,
    )  # fmt: skip
    provider = ClientCredentialsToken(settings)
    got = await provider.token(AuthIO("bizzstream", grant))
    assert got.reveal() == token
    assert_masked(token)


async def test_a_token_read_from_the_token_file_is_masked(tmp_path: Path) -> None:
    token = fresh("file")
    path = tmp_path / "token"
    path.write_text(token + "\n")
    assert mask_known(token) == token
    provider = FileToken(FileTokenSettings(str(path), check_interval=1.0))
    assert (await provider.token(AuthIO("bizzstream"))).reveal() == token
    assert_masked(token)


async def test_every_beeswax_cookie_value_kept_is_masked() -> None:
    session, remember, rotated = fresh("session"), fresh("remember"), fresh("rotated")

    async def login(request: OutboundRequest) -> UpstreamReply:
        cookies = (("Set-Cookie", f"k_buzz_cookie={session}; Path=/"),
                   ("Set-Cookie", f"k_buzz_remember={remember}; Max-Age=60"))  # fmt: skip
        return UpstreamReply(200, cookies, b'{"success": "true"}')

    settings = BeeswaxAuthSettings("ops@example.com", Secret("pw"))
    credential = await SessionCookieAuth(settings, AuthIO("beeswax", login)).bind(None, None)
    request = OutboundRequest("GET", "http://bees.test", "/rest/advertiser")
    flow, _ = await signed(credential, request)
    assert_masked(session, remember)
    assert mask_known(rotated) == rotated
    await answer(flow, UpstreamReply(200, (("Set-Cookie", f"k_buzz_cookie={rotated}"),)))
    assert_masked(rotated)


async def test_a_streamone_session_key_is_masked() -> None:
    key = fresh("skey")

    async def upstream(request: OutboundRequest) -> UpstreamReply:
        if request.path.endswith("session/initialize"):
            salt = "$2y$04$KUPxtN.Lr5dN.6hiiLssre"
            return envelope({"challenge": "c", "salt": salt, "needsv2hash": False})
        return envelope({"id": "sid", "key": key, "timeout": 600, "user": "alice"})

    session = SessionSettings("alice", Secret("alice-pw"), "127.0.0.1", 60.0)
    settings = StreamOneAuthSettings("application", "app", Secret("apppsk"), session)
    credential = await SignedQueryAuth(settings, AuthIO("streamone", upstream)).bind(None, None)
    await signed(credential, OutboundRequest("POST", "http://so.test", "/api/item/view"))
    assert_masked(key)


async def test_buzzstream_token_secrets_from_replies_and_the_store_are_masked() -> None:
    request_secret, access_secret = fresh("rsecret"), fresh("asecret")
    stored_secret, pending_secret = fresh("ssecret"), fresh("psecret")
    reply = f"oauth_token=rt&oauth_token_secret={request_secret}&oauth_callback_confirmed=true"
    parse_token_reply(UpstreamReply(200, (), reply.encode()), "request token", "buzzstream")
    reply = f"oauth_token=at&oauth_token_secret={access_secret}"
    parse_token_reply(UpstreamReply(200, (), reply.encode()), "access token", "buzzstream")
    assert_masked(request_secret, access_secret)

    # Written by another replica: this process learns them only from the store.
    store = MemoryStore()
    await save_user_token(store, "bob", "at2", stored_secret)
    await save_pending(store, "rt2", "carol", pending_secret)
    assert mask_known(stored_secret) == stored_secret
    assert mask_known(pending_secret) == pending_secret
    assert await load_user_token(store, "bob") == ("at2", stored_secret)
    assert await take_pending(store, "rt2") == Pending("carol", pending_secret)
    assert_masked(stored_secret, pending_secret)
