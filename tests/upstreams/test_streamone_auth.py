"""StreamOne signing auth, driven by hand and checked by the stand-in's own verifier
(``gateway.standins.streamone_verify``, stdlib only, no shared code)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qsl

import pytest

from gateway.config_reader import Secret, Section
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.errors import ConfigError, InvalidRequest, UpstreamAuthFailed
from gateway.standins.streamone_verify import (
    AuthState,
    Session,
    SignedCall,
    authenticate,
    md5_hex,
    response_matches,
    stored_hash,
)
from gateway.upstreams.base import AuthIO, Sender
from gateway.upstreams.streamone import (
    SignedQueryAuth,
    StreamOneActorSettings,
    StreamOneAuthSettings,
    parse_auth,
)
from gateway.upstreams.streamone_session import SessionSettings
from tests.upstreams.flows import answer, signed

NOW = 1_700_000_000.0
STANDIN = {"users": {"user": "psk"}, "applications": {"application": "apppsk"},
           "timestamp_window": 300, "invalid_auth_limit": 20, "session_timeout": 60}  # fmt: skip
FORM = "application/x-www-form-urlencoded"


def verify(request: OutboundRequest, auth: AuthState | None = None) -> str:
    params = dict(parse_qsl(request.query, keep_blank_values=True))
    params.pop("signature", None)
    call = SignedCall(request.path, request.query, request.body or b"")
    return authenticate(call, params, STANDIN, auth or AuthState(), NOW).principal


def call(query: str = "", ctype: str = "", body: bytes = b"") -> OutboundRequest:
    headers = (("Content-Type", ctype), ("Content-Length", str(len(body)))) if ctype else ()
    return OutboundRequest("POST", "http://so.test", "/api/item/view", query, headers, body)


def user_auth(**kw: object) -> SignedQueryAuth:
    settings = StreamOneAuthSettings("user", "user", Secret("psk"), **kw)  # type: ignore[arg-type]
    return SignedQueryAuth(settings, clock=lambda: NOW)


async def prepare(auth: SignedQueryAuth, request: OutboundRequest) -> OutboundRequest:
    """The request as the shared actor's flow first signs it."""
    return (await signed(await auth.bind(None, None), request))[1]


async def test_json_arguments_become_a_signed_form_body() -> None:
    auth = user_auth()
    body = json.dumps({"title": "a b", "tags": ["x", "y"], "public": True}).encode()
    credential = await auth.bind(None, None)
    _, prepared = await signed(credential, call("account=a1", "application/json", body))
    assert prepared.body == b"title=a+b&tags=x%2Cy&public=1"
    assert prepared.header("Content-Type") == FORM
    assert prepared.header("Content-Length") is None  # the client computes it for the new body
    assert prepared.query.startswith("account=a1&api=3&authentication_type=user&format=json&")
    assert prepared.query.rsplit("&", 1)[1].startswith("signature=")
    assert verify(prepared) == "user" and credential.account == "user:user"


async def test_a_form_body_is_sent_and_signed_byte_for_byte() -> None:
    body = b"id=item1&x=%C3%A9+y"
    prepared = await prepare(user_auth(), call("timezone=UTC", FORM, body))
    assert prepared.body == body
    assert verify(prepared) == "user"


async def test_no_arguments_signs_the_trailing_ampersand() -> None:
    prepared = await prepare(user_auth(), call())
    assert prepared.body == b"" and prepared.header("Content-Type") is None
    assert verify(prepared) == "user"


@pytest.mark.parametrize(
    ("query", "ctype", "body"),
    [("signature=x", "", b""), ("x=1", "", b""), ("account=1&customer=2", "", b""),
     ("", "application/json", b"[1, 2]"), ("", "application/json", b'{"a": {"b": 1}}'),
     ("", "text/plain", b"a=1"), ("", "application/json", b"{nope")],
)  # fmt: skip
async def test_unusable_requests_are_invalid_request(query: str, ctype: str, body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        await prepare(user_auth(), call(query, ctype, body))


SALT = "$2y$04$KUPxtN.Lr5dN.6hiiLssre"


class SessionUpstream:
    """Answers session/initialize and session/create as the platform does: it
    keeps only H and checks the response with the stand-in's verifier."""

    def __init__(self, needs_v2: bool = False, salt: str = SALT) -> None:
        self.calls: list[str] = []
        self.needs_v2, self.salt = needs_v2, salt
        self.hashed = stored_hash(md5_hex("alice-pw"), SALT)

    async def send(self, request: OutboundRequest) -> UpstreamReply:
        verify(request)  # signed by the application itself
        self.calls.append(request.path)
        args = dict(parse_qsl((request.body or b"").decode()))
        await asyncio.sleep(0)
        if request.path.endswith("session/initialize"):
            assert args == {"user": "alice", "userip": "10.0.0.1"}
            body: object = {"challenge": "c1", "salt": self.salt, "needsv2hash": self.needs_v2}
        else:
            assert response_matches(self.hashed, "c1", args.pop("response"))
            assert args.pop("challenge") == "c1"
            assert args == ({"v2hash": md5_hex("alice-pw")} if self.needs_v2 else {})
            n = len(self.calls) // 2
            body = {
                "id": f"sid{n}",
                "key": f"skey{n}",
                "timeout": 60,
                "user": {"username": "alice"},
            }
        envelope = {"header": {"status": 0, "statusmessage": "OK"}, "body": body}
        return UpstreamReply(200, (), json.dumps(envelope).encode())


def session_auth(clock: list[float], send: Sender) -> SignedQueryAuth:
    session = SessionSettings("alice", Secret("alice-pw"), "10.0.0.1", renew_before=10.0)
    settings = StreamOneAuthSettings("application", "application", Secret("apppsk"), session)
    return SignedQueryAuth(settings, AuthIO("streamone", send), clock=lambda: clock[0])


async def test_session_login_is_single_flight_and_signs_with_the_session_key() -> None:
    upstream, clock = SessionUpstream(), [NOW]
    credential = await session_auth(clock, upstream.send).bind(None, None)
    started = await asyncio.gather(*(signed(credential, call()) for _ in range(10)))
    prepared = [request for _, request in started]
    assert len(upstream.calls) == 2  # one initialize + one create for ten calls
    assert "session=sid1" in prepared[0].query
    state = AuthState(
        {"sid1": Session("sid1", "skey1", "application", {"username": "alice"}, NOW + 60)}
    )
    assert verify(prepared[0], state) == "alice"
    assert credential.account == "application:application/session:alice"
    gone = UpstreamReply(200, (), b'{"header": {"status": 282}, "body": null}')
    replays = await asyncio.gather(*(answer(flow, gone) for flow, _ in started))
    assert None not in replays  # each judged it a rejection, and renewed
    assert len(upstream.calls) == 4
    assert replays[0] is not None and "session=sid2" in replays[0].query


async def test_sessiontimeout_keeps_the_expiry_and_renews_ahead_of_it() -> None:
    upstream, clock = SessionUpstream(), [NOW]
    credential = await session_auth(clock, upstream.send).bind(None, None)
    await signed(credential, call())
    clock[0] += 45  # 15 s left, over renew_before: no new login
    flow, _ = await signed(credential, call())
    await answer(flow, UpstreamReply(200, (), b'{"header": {"status": 0, "sessiontimeout": 5}}'))
    assert len(upstream.calls) == 2
    await signed(credential, call())  # 5 s left < renew_before
    assert len(upstream.calls) == 4


async def test_needsv2hash_also_sends_the_v2_hash() -> None:
    upstream = SessionUpstream(needs_v2=True)
    prepared = await prepare(session_auth([NOW], upstream.send), call())
    assert len(upstream.calls) == 2 and "session=sid1" in prepared.query


@pytest.mark.parametrize(
    "salt", ["$6$rounds=5000$saltsalt$", "s1", "$2y$31$KUPxtN.Lr5dN.6hiiLssre"]
)
async def test_a_salt_of_an_unknown_scheme_is_upstream_auth_failed(salt: str) -> None:
    upstream = SessionUpstream(salt=salt)
    with pytest.raises(UpstreamAuthFailed) as caught:
        await prepare(session_auth([NOW], upstream.send), call())
    assert "salt the gateway cannot use" in caught.value.detail
    assert "alice-pw" not in caught.value.detail
    assert upstream.calls == ["/api/session/initialize"]  # session/create never sent


async def test_session_login_refused_is_upstream_auth_failed() -> None:
    async def refuse(request: OutboundRequest) -> UpstreamReply:
        return UpstreamReply(200, (), b'{"header": {"status": 3}, "body": null}')

    auth = session_auth([NOW], refuse)
    with pytest.raises(UpstreamAuthFailed):
        await prepare(auth, call())


def test_config_sessions_need_an_application_and_users_are_actors() -> None:
    with pytest.raises(ConfigError, match="sessions need auth_type application"):
        parse_auth(Section({"auth_type": "user", "actor_id": "u", "psk": "p",
                            "session": {"user": "a", "password": "b"}}, "a"))  # fmt: skip
    alice = {"auth_type": "application", "actor_id": "application", "psk": "q"}
    raw = {"auth_type": "user", "actor_id": "u", "psk": "p", "users": {"alice": alice}}
    parsed = parse_auth(Section(raw, "a"))
    assert parsed.users["alice"] == StreamOneActorSettings(
        "application", "application", Secret("q")
    )


@pytest.mark.parametrize(
    ("path", "root"),
    [
        ("/api/item/view", "/api"),
        ("/v3/api/item/view", "/v3/api"),
        ("/api/v3/api/item/view", "/api/v3/api"),  # a base path that holds /api/ itself
        ("/gw/api/v3/api/item/view/", "/gw/api/v3/api"),
    ],
)
async def test_session_calls_stay_below_the_base_path(path: str, root: str) -> None:
    upstream, clock = SessionUpstream(), [NOW]
    auth = session_auth(clock, upstream.send)
    request = OutboundRequest("POST", "http://so.test", path)
    prepared = await prepare(auth, request)
    assert upstream.calls == [f"{root}/session/initialize", f"{root}/session/create"]
    assert prepared.path == path and "session=sid1" in prepared.query


async def test_a_session_call_of_another_shape_is_refused_before_a_login() -> None:
    upstream = SessionUpstream()
    auth = session_auth([NOW], upstream.send)
    for path in ("/api/item", "/api/item/view/extra", "/v3/item/view"):
        with pytest.raises(InvalidRequest):
            await prepare(auth, OutboundRequest("POST", "http://so.test", path))
    assert upstream.calls == []
