"""The encrypted token store over a real Redis (and over memory)."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from gateway.config_reader import Secret
from gateway.errors import UpstreamUnavailable
from gateway.server.stores import MemoryStore, RedisStore
from gateway.server.tokenstore import create_token_store
from tests.harness import free_port


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
