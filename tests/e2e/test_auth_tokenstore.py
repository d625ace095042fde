"""The encrypted token store over a real Redis (and over memory)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from gateway.config import load_config
from gateway.config_reader import Secret
from gateway.devrun import STANDIN_CREDENTIALS
from gateway.errors import UpstreamUnavailable
from gateway.server.app import create_app
from gateway.server.stores import MemoryStore, RedisStore
from gateway.server.tokenstore import create_token_store
from gateway.upstreams.buzzstream_tokens import PENDING_TTL, save_pending
from tests.conftest import assert_problem
from tests.harness import CONFIG, free_port


async def test_values_are_encrypted_at_rest_and_keys_rotate(redis_flushed: str) -> None:
    client = aioredis.Redis.from_url(redis_flushed)
    try:
        inner = RedisStore(client, "gwtest")
        old = create_token_store(inner, Secret("old-key"))
        await old.set("oauth1:buzzstream:user:alice", b'{"token": "plain-token-value"}')
        raw = await client.get("gwtest:kv:oauth1:buzzstream:user:alice")
        assert raw and b"plain-token-value" not in raw
        rotated = create_token_store(inner, Secret("new-key, old-key"))
        assert (
            await rotated.get("oauth1:buzzstream:user:alice") == b'{"token": "plain-token-value"}'
        )
        await rotated.set("k", b"v", ttl=60)
        assert 0 < await client.pttl("gwtest:kv:k") <= 60_000
        with capture_logs() as logs:
            assert await create_token_store(inner, Secret("other")).get("k") is None
        assert logs[0]["event"] == "token_store_undecryptable"
        assert "v" not in str(logs[0].get("key_kind"))
    finally:
        await client.aclose()


async def test_an_unset_key_is_per_process_and_says_so() -> None:
    inner = MemoryStore()
    with capture_logs() as logs:
        first = create_token_store(inner, None)
    assert logs[0]["event"] == "token_store_key_generated"
    await first.set("k", b"v")
    assert await first.get("k") == b"v"
    assert await create_token_store(inner, None).get("k") is None  # a "restart"


async def test_redis_down_is_upstream_unavailable_not_a_fallback() -> None:
    client = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2
    )
    try:
        store = create_token_store(RedisStore(client, "gw"), Secret("k"))
        with pytest.raises(UpstreamUnavailable):
            await store.get("oauth1:buzzstream:user:alice")
    finally:
        await client.aclose()


async def test_the_memory_store_sweeps_expired_entries() -> None:
    """Abandoned onboarding states (never read again) must not pile up in memory."""
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    for i in range(1000):
        await save_pending(store, f"request-token-{i}", "alice", "temporary-secret")
    await store.set("oauth1:buzzstream:user:alice", b"kept")  # no ttl: never swept
    await store.set("rewritten", b"old", ttl=1)
    await store.set("rewritten", b"new", ttl=PENDING_TTL * 2)  # its first expiry is stale
    assert len(store) == 1002
    now[0] += PENDING_TTL + 1
    await store.set("another", b"v", ttl=PENDING_TTL)  # any write sweeps
    assert len(store) == 3
    assert await store.get("oauth1:buzzstream:user:alice") == b"kept"
    assert await store.get("rewritten") == b"new"
    now[0] += PENDING_TTL * 2
    await store.set("last", b"v")
    assert len(store) == 2  # "kept" and "last"


@pytest.mark.parametrize("where", ["redis", "memory"])
async def test_take_gives_a_value_once_even_to_concurrent_takers(
    where: str, redis_flushed: str
) -> None:
    client = aioredis.Redis.from_url(redis_flushed)
    try:
        inner = RedisStore(client, "gwtest") if where == "redis" else MemoryStore()
        store = create_token_store(inner, Secret("a-key"))
        await store.set("pending:h", b"onboarding", ttl=60)
        await asyncio.gather(*(client.ping() for _ in range(8)))  # a connection each
        taken = await asyncio.gather(*(store.take("pending:h") for _ in range(8)))
        assert sorted(taken, key=bool) == [None] * 7 + [b"onboarding"]
        assert await store.get("pending:h") is None and await store.take("absent") is None
    finally:
        await client.aclose()


async def test_a_refused_call_is_refused_before_its_credentials_are_read(
    aiohttp_server: Any,
) -> None:
    """check_request runs before auth.bind (as in c42fca1): a BuzzStream call with its
    own oauth_* parameter is a 400 even when the token store that bind() reads for
    X-Gateway-User is down (Redis), not a 503. A form body, whose parameters the check
    reads, is read first (before: checked after bind, so that POST got the 503)."""
    env = dict(STANDIN_CREDENTIALS, GATEWAY_TOKEN_STORE_KEY="k" * 32)
    for name in ("BIZZSTREAM", "BEESWAX", "BUZZSTREAM", "STREAMONE"):
        env[f"{name}_URL"] = "http://127.0.0.1:9"
    env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # configured, down
    server = await aiohttp_server(create_app(load_config(CONFIG, env)))
    async with aiohttp.ClientSession() as http:
        url = server.make_url("/buzzstream/websites?oauth_token=x")
        async with http.get(url, headers={"X-Gateway-User": "alice"}) as resp:
            problem = assert_problem(await resp.read(), 400)
        assert problem["code"] == "invalid_request" and "oauth_token" in problem["detail"]
        form = {"X-Gateway-User": "alice", "Content-Type": "application/x-www-form-urlencoded"}
        url = server.make_url("/buzzstream/websites")
        async with http.post(url, data=b"name=a&oauth_x=1", headers=form) as resp:
            problem = assert_problem(await resp.read(), 400)
        assert problem["code"] == "invalid_request" and "oauth_x" in problem["detail"]
