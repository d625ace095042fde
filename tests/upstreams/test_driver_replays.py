"""The driver enforces the replay rule itself, whatever a credential flow yields.

A flow may ask for a replay by yielding a second request; the driver
(``gateway/server/driver.py``) sends it once at most, never for a streamed body
(it is gone), and answers ``upstream_auth_failed`` otherwise. Checked with
flows that ignore the rule, against a real HTTP server over loopback that
counts what reaches it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.config import parse_config
from gateway.core.messages import OutboundRequest
from gateway.errors import UpstreamAuthFailed
from gateway.metrics import create_metrics
from gateway.server.client import UpstreamClient, make_session
from gateway.server.driver import exchange
from gateway.upstreams.base import CredentialRejected, Flow


@dataclass(frozen=True)
class Greedy:
    """A flow that asks for a replay after every reply, forever (a broken auth)."""

    account: str = "greedy"

    def needs_body(self, request: OutboundRequest) -> bool:
        return False

    def requires_reply_body(self, status: int) -> bool:
        return False

    async def flow(self, request: OutboundRequest) -> Flow:
        attempt = 0
        while True:
            attempt += 1
            yield request.with_header("X-Attempt", str(attempt))


@dataclass(frozen=True)
class Refusing(Greedy):
    """A flow that judges the first reply a refusal it cannot renew."""

    async def flow(self, request: OutboundRequest) -> Flow:
        yield request
        raise CredentialRejected


class Upstream:
    """Answers every call 401 and keeps what reached it."""

    def __init__(self) -> None:
        self.seen: list[tuple[str | None, bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.headers.get("X-Attempt"), await request.read()))
        return web.json_response({"error": "token_expired"}, status=401)


@pytest.fixture
async def upstream(aiohttp_server: Any) -> AsyncIterator[tuple[Upstream, UpstreamClient]]:
    up = Upstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", up.handle)
    server = await aiohttp_server(app)
    raw = {"base_url": str(server.make_url("")), "auth": {"token": "t", "environment_id": "e"}}
    cfg = parse_config({"upstreams": {"bizzstream": raw}}, {}).upstreams["bizzstream"]
    session = make_session(cfg)
    yield up, UpstreamClient(cfg, session, create_metrics())
    await session.close()


def post(streamed: bool) -> OutboundRequest:
    return OutboundRequest(
        "POST", "", "/api/v1/documents", headers=(("Content-Type", "application/json"),),
        body=None if streamed else b'{"n": 1}', streamed_body=streamed,
    )  # fmt: skip


async def caller_body() -> AsyncIterator[bytes]:
    yield b'{"n": 1}'


async def run(client: UpstreamClient, credential: Greedy, streamed: bool) -> str:
    request = post(streamed)
    request = OutboundRequest(**{**request.__dict__, "base_url": client.cfg.host_url})
    with pytest.raises(UpstreamAuthFailed) as caught:
        await exchange(client, credential, request, body_limit=lambda head: 0, body=caller_body)
    return caught.value.detail


async def test_a_flow_that_keeps_asking_gets_one_replay(
    upstream: tuple[Upstream, UpstreamClient],
) -> None:
    up, client = upstream
    detail = await run(client, Greedy(), streamed=False)
    assert detail == "bizzstream rejected the gateway's credentials after one renewal"
    assert up.seen == [("1", b'{"n": 1}'), ("2", b'{"n": 1}')]  # sent twice, never thrice


async def test_a_streamed_body_is_never_replayed_whatever_the_flow_asks(
    upstream: tuple[Upstream, UpstreamClient],
) -> None:
    up, client = upstream
    detail = await run(client, Greedy(), streamed=True)
    assert detail == "bizzstream rejected the gateway's credentials, which cannot be renewed here"
    assert up.seen == [("1", b'{"n": 1}')]


async def test_a_refusal_the_flow_cannot_renew_is_final(
    upstream: tuple[Upstream, UpstreamClient],
) -> None:
    up, client = upstream
    detail = await run(client, Refusing(), streamed=False)
    assert detail == "bizzstream rejected the gateway's credentials, which cannot be renewed here"
    assert up.seen == [(None, b'{"n": 1}')]


async def test_a_reply_the_flow_accepts_is_final_and_left_open_for_streaming(
    upstream: tuple[Upstream, UpstreamClient],
) -> None:
    up, client = upstream

    @dataclass(frozen=True)
    class Once(Greedy):
        async def flow(self, request: OutboundRequest) -> Flow:
            yield request

    request = OutboundRequest(**{**post(False).__dict__, "base_url": client.cfg.host_url})
    result = await exchange(client, Once(), request, body_limit=lambda head: 0)
    assert result.reply.status == 401 and result.reply.body is None
    assert isinstance(result.response, aiohttp.ClientResponse)
    assert await result.response.json() == {"error": "token_expired"}
    assert len(up.seen) == 1
