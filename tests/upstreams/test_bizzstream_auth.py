"""BizzStream bearer auth and its token providers, driven by hand (no network)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from gateway.config_reader import Secret, Section
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.errors import ConfigError, UpstreamAuthFailed
from gateway.upstreams.base import AuthIO, Sender
from gateway.upstreams.bizzstream import (
    BearerEnvironmentAuth,
    BizzStreamAuthSettings,
    BizzStreamCredentials,
    parse_auth,
)
from gateway.upstreams.tokens import (
    ClientCredentialsSettings,
    ClientCredentialsToken,
    FileToken,
    FileTokenSettings,
    ProviderSettings,
    StaticTokenSettings,
)
from tests.upstreams.flows import answer, signed

REQUEST = OutboundRequest("GET", "http://bizz.test", "/api/v1/documents", "ddName=x")
EXPIRED = UpstreamReply(401, (), json.dumps({"status": "error", "error": "token_expired"}).encode())


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TokenEndpoint:
    def __init__(self, status: int = 200, expires_in: int | None = 3600) -> None:
        self.grants: list[OutboundRequest] = []
        self.status = status
        self.expires_in = expires_in

    async def send(self, request: OutboundRequest) -> UpstreamReply:
        self.grants.append(request)
        await asyncio.sleep(0)
        if self.status != 200:
            return UpstreamReply(self.status, (), b'{"error": "invalid_client"}')
        body: dict[str, object] = {"access_token": f"t{len(self.grants)}", "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return UpstreamReply(200, (), json.dumps(body).encode())


def recording(send: Sender | None = None) -> tuple[AuthIO, list[str]]:
    """Its I/O, and the renewals it reports (``gateway_auth_renewals_total``)."""
    seen: list[str] = []
    if send is None:
        return AuthIO("bizzstream", report=seen.append), seen
    return AuthIO("bizzstream", send, report=seen.append), seen


def grant_settings(method: str = "client_secret_basic") -> ClientCredentialsSettings:
    return ClientCredentialsSettings(
        token_url="http://bizz.test/oauth/token?x=1",
        client_id="standin-client",
        client_secret=Secret("standin-client-secret"),
        scope="documents",
        auth_method=method,
        renew_before=30.0,
    )


async def test_static_token_is_sent_with_the_environment_and_cannot_renew() -> None:
    io, seen = recording()
    settings = BizzStreamAuthSettings(StaticTokenSettings(Secret("tok")), "env")
    credential = await BearerEnvironmentAuth(settings, io).bind(None, None)
    flow, prepared = await signed(credential, REQUEST)
    assert prepared.header("Authorization") == "Bearer tok"
    assert prepared.header("environment-id") == "env"
    assert credential.account == "env"
    other, _ = await signed(credential, REQUEST)
    assert await answer(other, UpstreamReply(401, (), b'{"error": "unauthorized"}')) is None
    with pytest.raises(UpstreamAuthFailed):  # token_expired: a renewal, which cannot be
        await answer(flow, EXPIRED)
    assert seen == ["error"]


async def test_file_token_is_reread_when_it_changes_and_on_token_expired(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("one\n")
    clock = Clock()
    provider = FileToken(FileTokenSettings(str(path), check_interval=1.0), clock=clock)
    io, seen = recording()
    assert (await provider.token(io)).reveal() == "one"
    path.write_text("two\n")
    os.utime(path, ns=(1, 1))  # a different stamp even on coarse file systems
    assert (await provider.token(io)).reveal() == "one"  # checked at most every second
    clock.now += 1
    assert (await provider.token(io)).reveal() == "two"
    path.write_text("three")
    await asyncio.gather(*(provider.renew(io, Secret("two")) for _ in range(10)))
    assert (await provider.token(io)).reveal() == "three"
    assert seen == ["ok"]  # one re-read for ten refused calls


async def test_file_token_without_a_newer_value_gives_up(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("same")
    provider = FileToken(FileTokenSettings(str(path), check_interval=1.0))
    io = AuthIO("bizzstream")
    stale = await provider.token(io)
    with pytest.raises(UpstreamAuthFailed):
        await provider.renew(io, stale)
    path.unlink()
    with pytest.raises(UpstreamAuthFailed) as caught:
        await FileToken(FileTokenSettings(str(path), 1.0)).token(io)
    assert str(tmp_path) not in str(caught.value)


def test_client_credentials_request_follows_rfc6749() -> None:
    request = ClientCredentialsToken(grant_settings()).grant_request()
    assert (request.method, request.base_url, request.path, request.query) == (
        "POST", "http://bizz.test", "/oauth/token", "x=1",
    )  # fmt: skip
    assert parse_qs((request.body or b"").decode()) == {
        "grant_type": ["client_credentials"], "scope": ["documents"],
    }  # fmt: skip
    basic = request.header("Authorization") or ""
    assert base64.b64decode(basic.removeprefix("Basic ")) == b"standin-client:standin-client-secret"
    post = ClientCredentialsToken(grant_settings("client_secret_post")).grant_request()
    assert post.header("Authorization") is None
    assert parse_qs((post.body or b"").decode())["client_secret"] == ["standin-client-secret"]


async def test_client_credentials_fetch_once_renew_single_flight_and_ahead_of_expiry() -> None:
    endpoint = TokenEndpoint(expires_in=100)
    clock = Clock()
    provider = ClientCredentialsToken(grant_settings(), clock=clock)
    io, seen = recording(endpoint.send)
    tokens = await asyncio.gather(*(provider.token(io) for _ in range(20)))
    assert {t.reveal() for t in tokens} == {"t1"} and len(endpoint.grants) == 1
    await asyncio.gather(*(provider.renew(io, Secret("t1")) for _ in range(20)))
    assert (await provider.token(io)).reveal() == "t2" and len(endpoint.grants) == 2
    clock.now += 71  # within renew_before (30 s) of expires_in (100 s)
    assert (await provider.token(io)).reveal() == "t3"
    assert seen == ["ok", "ok", "ok"]


async def test_client_credentials_refusal_is_upstream_auth_failed_without_a_storm() -> None:
    endpoint = TokenEndpoint(status=401)
    provider = ClientCredentialsToken(grant_settings(), clock=Clock())
    io = AuthIO("bizzstream", endpoint.send)
    results = await asyncio.gather(*(provider.token(io) for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, UpstreamAuthFailed) for r in results)
    assert "invalid_client" in str(results[0]) and "standin-client-secret" not in str(results[0])
    assert len(endpoint.grants) == 1


async def test_bizzstream_auth_renews_through_the_provider_and_per_user() -> None:
    endpoint = TokenEndpoint()
    users = {"alice": BizzStreamCredentials(StaticTokenSettings(Secret("alice-tok")), "env-a")}
    settings = BizzStreamAuthSettings(grant_settings(), "env", users)
    auth = BearerEnvironmentAuth(settings, AuthIO("bizzstream", endpoint.send))
    credential = await auth.bind(None, None)
    flow, prepared = await signed(credential, REQUEST)
    assert prepared.header("Authorization") == "Bearer t1"
    replay = await answer(flow, EXPIRED)  # renewed, signed again
    assert replay is not None and replay.header("Authorization") == "Bearer t2"
    alice = await auth.bind("alice", None)
    _, prepared = await signed(alice, REQUEST)
    assert prepared.header("Authorization") == "Bearer alice-tok"
    assert (prepared.header("environment-id"), alice.account) == ("env-a", "env-a")


def test_config_needs_exactly_one_provider() -> None:
    with pytest.raises(ConfigError, match="exactly one of token, token_file, client_credentials"):
        parse_auth(Section({"environment_id": "e", "token": "t", "token_file": "/f"}, "a"))
    with pytest.raises(ConfigError, match="a: give exactly one"):
        parse_auth(Section({"environment_id": "e"}, "a"))
    with pytest.raises(ConfigError, match="token_url"):
        parse_auth(Section({"environment_id": "e", "client_credentials": {
            "token_url": "ftp://x", "client_id": "c", "client_secret": "s"}}, "a"))  # fmt: skip
    grant = {"token_url": "http://h/oauth/token", "client_id": "c", "client_secret": "s"}
    parsed = parse_auth(Section({"environment_id": "e", "client_credentials": grant}, "a"))
    assert isinstance(parsed.provider, ClientCredentialsSettings)
    assert "'s'" not in repr(parsed)


async def test_only_a_renewable_token_buffers_the_body_for_a_replay(tmp_path: Path) -> None:
    static = StaticTokenSettings(Secret("tok"))
    file = FileTokenSettings(str(tmp_path / "token"), check_interval=1.0)
    post = OutboundRequest("POST", "http://bizz.test", "/api/v1/documents", "ddName=x")

    async def needs_body(
        provider: ProviderSettings,
        users: dict[str, ProviderSettings] | None = None,
        user: str | None = None,
    ) -> bool:
        creds = {u: BizzStreamCredentials(p, "env") for u, p in (users or {}).items()}
        settings = BizzStreamAuthSettings(provider, "env", creds)
        return (await BearerEnvironmentAuth(settings).bind(user, None)).needs_body(post)

    assert not await needs_body(static)  # never replayed: the body streams through
    assert not await needs_body(static, {"olga": StaticTokenSettings(Secret("olga"))}, "olga")
    assert await needs_body(file)
    assert await needs_body(grant_settings())
    assert await needs_body(static, {"dana": file}, "dana")  # dana's call may be replayed
    assert not await needs_body(static, {"dana": file})  # the shared token's never is
