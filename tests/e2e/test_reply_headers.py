"""Every kind of reply carries the gateway's own headers (``middlewares.gateway_app``):
the request id, and the RateLimit fields when a quota policy applied."""

from __future__ import annotations

from typing import Any

from gateway.server.oauth_routes import onboarding_app

POLICY = '"per_account";q=5;w=1'  # buzzstream's policy in the shipped config


async def test_every_kind_of_reply_carries_the_request_id_and_its_ratelimit_fields(
    aiohttp_client: Any, gateway_client: Any
) -> None:
    browser = await aiohttp_client(onboarding_app(gateway_client.server.app))
    get = gateway_client.get
    replies = {  # kind: (reply, whether a policy applied)
        "health": (await get("/healthz"), False),
        "problem": (await get("/nowhere/x"), False),
        "local answer": (await gateway_client.post("/beeswax/rest/authenticate", json={}), False),
        "buffered": (await get("/buzzstream/__fault/echo"), True),  # JSON: links rewritten
        "streamed": (await get("/buzzstream/__fault/text/200"), True),  # text: passed on
        "onboarding start": (
            await get("/oauth/buzzstream/start?user=alice", allow_redirects=False),
            True,
        ),
        "onboarding callback": (
            await browser.get("/oauth/buzzstream/callback?oauth_token=nope&oauth_verifier=x"),
            False,
        ),
    }
    statuses = {kind: resp.status for kind, (resp, _) in replies.items()}
    assert statuses == {
        "health": 200,
        "problem": 404,
        "local answer": 200,
        "buffered": 200,
        "streamed": 200,
        "onboarding start": 302,
        "onboarding callback": 400,
    }
    for kind, (resp, limited) in replies.items():
        assert len(resp.headers.getall("X-Request-Id")) == 1, kind
        assert len(resp.headers["X-Request-Id"]) == 32, kind  # made by the gateway
        assert resp.headers.get("RateLimit-Policy") == (POLICY if limited else None), kind
        assert ("RateLimit" in resp.headers) is limited, kind
    sent = await get("/buzzstream/__fault/text/200", headers={"X-Request-Id": "mine-1"})
    assert sent.headers["X-Request-Id"] == "mine-1"
