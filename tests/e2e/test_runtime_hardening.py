"""Issue 10, resends and timeouts: each test fails without its fix.

The gateway runs in-process against the real stand-ins (real HTTP over
loopback); the stand-ins' fault routes misbehave on purpose and record every
request they receive, so a resend is counted where it would land.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.server.app import create_app
from gateway.server.keys import METRICS
from tests.conftest import make_config, problem_reply
from tests.harness import Standins, write_config


def _sends(standins: Standins, upstream: str, request_id: str) -> int:
    return sum(
        1
        for seen in standins.seen(upstream)
        if {k.lower(): v for k, v in seen["headers"].items()}.get("x-request-id") == request_id
    )


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "POST"])
async def test_a_dropped_connection_is_never_resent(
    gateway_client: Any, fresh_standins: Standins, method: str
) -> None:
    # aiohttp's client resent GET/PUT/DELETE on its own when the upstream closed
    # the connection after reading the request: the stand-in saw two sends.
    request_id = uuid.uuid4().hex
    resp = await gateway_client.request(
        method, "/bizzstream/__fault/drop", headers={"X-Request-Id": request_id}
    )
    problem = await problem_reply(resp, 503, "bizzstream")
    assert problem["code"] == "upstream_unavailable"
    assert "closed the connection" in problem["detail"]
    assert _sends(fresh_standins, "bizzstream", request_id) == 1


def _with_timeouts(tmp_path: Path, **bizz: Any) -> Path:
    return write_config(tmp_path, lambda d: d["upstreams"]["bizzstream"].update(bizz))


async def _gateway(aiohttp_client: Any, standins: Standins, path: Path) -> Any:
    return await aiohttp_client(create_app(make_config(standins, path)))


def _failures(client: Any, reason: str) -> float:
    value = client.server.app[METRICS].registry.get_sample_value(
        "gateway_upstream_failures_total", {"upstream": "bizzstream", "reason": reason}
    )
    return float(value or 0.0)


async def test_a_full_pool_is_503_pool_exhausted_within_the_pool_bound(
    aiohttp_client: Any, fresh_standins: Standins, tmp_path: Path
) -> None:
    # Before: the second call waited for the busy connection (reported, when it
    # ran out, as upstream_timeout "did not answer within 30s").
    path = _with_timeouts(tmp_path, pool_size=1, timeouts={"pool": "300ms", "head": "10s"})
    client = await _gateway(aiohttp_client, fresh_standins, path)
    busy = asyncio.ensure_future(client.get("/bizzstream/__fault/sleep?seconds=1.5"))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    resp = await client.get("/bizzstream/__fault/echo")
    waited = time.monotonic() - started
    problem = await problem_reply(resp, 503, "bizzstream")
    assert problem["code"] == "upstream_unavailable"
    assert "connection pool exhausted" in problem["detail"]
    assert resp.headers["Retry-After"] == "1"
    assert 0.25 <= waited < 1.0
    assert _failures(client, "pool_exhausted") == 1
    assert (await busy).status == 200  # the busy call itself is unharmed


async def test_a_slow_but_steady_download_longer_than_the_head_timeout_is_not_cut(
    aiohttp_client: Any, fresh_standins: Standins, tmp_path: Path
) -> None:
    # `total` (now the former name of `head`) used to bound the whole body too.
    path = _with_timeouts(tmp_path, timeouts={"connect": "2s", "total": "1s"})
    client = await _gateway(aiohttp_client, fresh_standins, path)
    started = time.monotonic()
    resp = await client.get("/bizzstream/__fault/trickle?chunks=8&every=0.25&size=1000")
    assert resp.status == 200
    assert await resp.read() == b"t" * 8000
    assert time.monotonic() - started > 1.5  # well past the 1 s head bound
    assert _failures(client, "idle_timeout") == 0


async def test_a_stalled_body_is_cut_after_the_idle_timeout(
    aiohttp_client: Any, fresh_standins: Standins, tmp_path: Path
) -> None:
    path = _with_timeouts(tmp_path, timeouts={"head": "10s", "idle": "300ms"})
    client = await _gateway(aiohttp_client, fresh_standins, path)
    resp = await client.get("/bizzstream/__fault/trickle?chunks=3&every=1.0&size=100")
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    assert _failures(client, "idle_timeout") == 1


async def test_no_reply_head_within_the_head_timeout_is_504(
    aiohttp_client: Any, fresh_standins: Standins, tmp_path: Path
) -> None:
    path = _with_timeouts(tmp_path, timeouts={"head": "300ms"})
    client = await _gateway(aiohttp_client, fresh_standins, path)
    resp = await client.get("/bizzstream/__fault/sleep?seconds=2")
    problem = await problem_reply(resp, 504, "bizzstream")
    assert problem["detail"] == "bizzstream did not answer within 0.3s"
    assert _failures(client, "head_timeout") == 1
