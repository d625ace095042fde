"""Quotas at the HTTP edge: headers, 429 problems, shared cool-downs, disconnects.

In-process gateway apps (``aiohttp_client``) over loopback to the real
stand-ins and a real Redis; two apps on one Redis play two replicas.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from gateway.config import GatewayConfig, RatePolicy
from gateway.server.app import create_app
from gateway.server.keys import METRICS
from tests.conftest import assert_problem, make_config
from tests.harness import Standins, free_port, launch_standins
from tests.quota.conftest import policy, sample

Client = TestClient[Any, Any]
AppFactory = Callable[..., Awaitable[Client]]
DOCS = "/bizzstream/api/v1/documents?ddName=orders"


def with_limits(
    config: GatewayConfig, upstream: str, *policies: RatePolicy, **redis: Any
) -> GatewayConfig:
    ups = dict(config.upstreams)
    ups[upstream] = replace(ups[upstream], rate_limits=policies)
    return replace(config, upstreams=ups, redis=replace(config.redis, **redis))


@pytest.fixture
def gateway_app(aiohttp_client: Any) -> AppFactory:
    async def build(config: GatewayConfig) -> Client:
        return await aiohttp_client(create_app(config))  # type: ignore[no-any-return]

    return build


async def test_proxied_replies_carry_the_ratelimit_fields(
    gateway_app: AppFactory, fresh_standins: Standins, redis_flushed: str
) -> None:
    # A slot per second: nothing refills between the two calls, so r is exact.
    p = policy("per_env", limit=60, period=60, burst=60, on_exceed="delay")
    client = await gateway_app(with_limits(make_config(fresh_standins, REDIS_URL=redis_flushed),
                                           "bizzstream", p))  # fmt: skip
    ok = await client.get(DOCS)
    assert ok.status == 200
    assert ok.headers["RateLimit-Policy"] == '"per_env";q=60;w=60'
    assert ok.headers["RateLimit"] == '"per_env";r=59;t=1'
    failed = await client.get("/bizzstream/api/v1/fail/404")
    assert_problem(await failed.read(), 404)
    assert failed.headers["RateLimit"] == '"per_env";r=58;t=2'


async def test_a_refusal_is_a_429_problem_from_the_gateway(
    gateway_app: AppFactory, fresh_standins: Standins, redis_flushed: str
) -> None:
    p = policy("per_env", limit=1, period=60, burst=1, on_exceed="reject")
    client = await gateway_app(with_limits(make_config(fresh_standins, REDIS_URL=redis_flushed),
                                           "bizzstream", p))  # fmt: skip
    assert (await client.get(DOCS)).status == 200
    refused = await client.get(DOCS)
    body = assert_problem(await refused.read(), 429)
    assert body["code"] == "rate_limited" and body["source"] == "gateway"
    assert body["retry_after"] == pytest.approx(60, abs=0.1)
    assert refused.headers["Retry-After"] == "60"
    assert refused.headers["RateLimit"] == '"per_env";r=0;t=60'
    assert len(fresh_standins.seen("bizzstream")) == 1  # the refused call never left


async def test_an_upstream_429_cools_the_account_down_on_every_replica(
    gateway_app: AppFactory, fresh_standins: Standins, redis_flushed: str
) -> None:
    base = make_config(fresh_standins, REDIS_URL=redis_flushed)
    a = await gateway_app(base)  # no bizzstream policy at all
    held = policy("docs", match="/api/v1/documents*", limit=100, period=1, on_exceed="delay")
    b = await gateway_app(with_limits(base, "bizzstream", held))

    pushed = await a.get("/bizzstream/__fault/text/429")
    body = assert_problem(await pushed.read(), 429)
    assert body["source"] == "upstream" and body["retry_after"] == 1.0
    metrics = a.server.app[METRICS]
    assert sample(metrics, "gateway_upstream_cooldowns_total", upstream="bizzstream") == 1
    seen = len(fresh_standins.seen("bizzstream"))

    # the other replica: refused at once where no delay policy may hold the call...
    refused = await b.get("/bizzstream/__fault/echo")
    body = assert_problem(await refused.read(), 429)
    assert body["source"] == "gateway" and 0 < body["retry_after"] <= 1.0
    assert len(fresh_standins.seen("bizzstream")) == seen
    # ...and held until the cool-down ends where a delay policy applies
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await b.get(DOCS)).status == 200
    assert loop.time() - started > 0.5
    assert (await a.get("/bizzstream/__fault/echo")).status == 200  # over


@pytest.fixture(scope="module")
def strict_streamone() -> Iterator[Standins]:
    """Own stand-ins: StreamOne answers status 8 after two failed authentications."""
    standins = launch_standins({"streamone": {"invalid_auth_limit": 2}})
    yield standins
    standins.stop()


async def test_streamone_status_8_cools_the_actor_down_on_every_replica(
    gateway_app: AppFactory, strict_streamone: Standins, redis_flushed: str
) -> None:
    wrong = await gateway_app(
        make_config(strict_streamone, REDIS_URL=redis_flushed, STREAMONE_PSK="wrong-psk")
    )
    right = await gateway_app(make_config(strict_streamone, REDIS_URL=redis_flushed))
    for _ in range(5):  # AUTHENTICATION_FAILED (502) until the stand-in says 8
        locked = await wrong.post("/streamone/item/view", data={})
        if locked.status == 429:
            break
        assert locked.status == 502
    body = assert_problem(await locked.read(), 429)
    assert body["source"] == "upstream" and body["upstream_code"] == "RATE_LIMITED"
    seen = len(strict_streamone.seen("streamone"))

    refused = await right.post("/streamone/item/view", data={})
    body = assert_problem(await refused.read(), 429)
    assert body["source"] == "gateway" and body["retry_after"] > 50
    assert len(strict_streamone.seen("streamone")) == seen  # nobody hammers the upstream


async def test_a_caller_leaving_during_its_delay_gives_the_slot_back(
    gateway_app: AppFactory, fresh_standins: Standins, redis_flushed: str
) -> None:
    p = policy("per_env", limit=1, period=1, burst=1, on_exceed="delay", max_delay=5)
    client = await gateway_app(with_limits(make_config(fresh_standins, REDIS_URL=redis_flushed),
                                           "bizzstream", p))  # fmt: skip
    store = aioredis.Redis.from_url(redis_flushed)
    key = "gw:{bizzstream:env-standin}:per_env"
    assert (await client.get(DOCS)).status == 200
    after_first = await store.get(key)
    with pytest.raises(asyncio.TimeoutError):
        await client.get(DOCS, timeout=aiohttp.ClientTimeout(total=0.2))  # would wait ~1 s
    assert await store.get(key) != after_first  # the slot was reserved...
    await asyncio.sleep(0.2)
    assert await store.get(key) == after_first  # ...and given back once the caller left
    assert len(fresh_standins.seen("bizzstream")) == 1
    await store.aclose()


async def test_on_error_closed_refuses_with_503_while_redis_is_unreachable(
    gateway_app: AppFactory, fresh_standins: Standins
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    config = with_limits(make_config(fresh_standins, REDIS_URL=dead), "bizzstream", policy(),
                         on_error="closed", probe_interval=60.0)  # fmt: skip
    client = await gateway_app(config)
    refused = await client.get(DOCS)
    body = assert_problem(await refused.read(), 503)
    assert body["code"] == "upstream_unavailable"
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["checks"]["limiter"].startswith("closed fallback")
    assert len(fresh_standins.seen("bizzstream")) == 0


async def test_without_redis_limits_are_in_memory_and_start_up_says_so(
    gateway_app: AppFactory, fresh_standins: Standins
) -> None:
    p = policy("per_env", limit=1, period=60, burst=1)
    with capture_logs() as logs:
        client = await gateway_app(with_limits(make_config(fresh_standins), "bizzstream", p))
    said = [e for e in logs if e["event"] == "limiter"]
    assert said and said[0]["backend"] == "memory" and "this process only" in said[0]["detail"]
    assert (await client.get(DOCS)).status == 200
    assert (await client.get(DOCS)).status == 429
    ready = await client.get("/readyz")
    assert json.loads(await ready.text())["checks"]["limiter"].startswith("memory")
