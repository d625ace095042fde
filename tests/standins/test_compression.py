"""All four stand-ins gzip their replies like real front servers (nginx's gzip module)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.standins import beeswax, bizzstream, buzzstream, streamone
from gateway.standins.compression import accepts_gzip

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]

# An unauthenticated call to each: every stand-in answers it with a JSON error body.
CALLS: dict[str, tuple[Callable[[], web.Application], str, str]] = {
    "bizzstream": (bizzstream.create_app, "GET", "/api/v1/documents?ddName=x"),
    "beeswax": (beeswax.create_app, "GET", "/rest/advertiser"),
    "buzzstream": (buzzstream.create_app, "GET", "/v1/websites"),
    "streamone": (streamone.create_app, "POST", "/api/item/view?api=3&format=json"),
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gzip, deflate", True),  # requests, aiohttp
        ("gzip, deflate, br, zstd", True),  # httpx with brotli/zstd installed, browsers
        ("GZIP", True),
        ("x-gzip", True),
        ("deflate;q=1, gzip;q=0.1", True),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("*", False),  # nginx looks for the gzip token only
        ("identity", False),
        ("br, zstd", False),
        ("", False),
        (None, False),
    ],
)
def test_accepts_gzip(value: str | None, expected: bool) -> None:
    assert accepts_gzip(value) is expected


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_json_replies_are_gzipped_when_the_client_accepts_gzip(
    aiohttp_client: MakeClient, name: str
) -> None:
    factory, method, path = CALLS[name]
    client = await aiohttp_client(factory())
    headers = {"Accept-Encoding": "gzip, deflate"}
    async with client.request(method, path, headers=headers, auto_decompress=False) as resp:
        raw = await resp.read()
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Vary"] == "Accept-Encoding"
        assert int(resp.headers["Content-Length"]) == len(raw)
        body: Any = json.loads(gzip.decompress(raw))
        assert body  # the stand-in's own error shape, decoded
    for accept in ("identity", "gzip;q=0"):
        headers = {"Accept-Encoding": accept}
        async with client.request(method, path, headers=headers, auto_decompress=False) as resp:
            assert "Content-Encoding" not in resp.headers
            assert json.loads(await resp.read()) == body


async def test_gzip_bomb_fault_route(aiohttp_client: MakeClient) -> None:
    client = await aiohttp_client(beeswax.create_app())
    size = 8 * 1024 * 1024
    path = f"/__fault/gzipbomb/500?size={size}"
    async with client.get(path, auto_decompress=False) as resp:  # sent whatever is accepted
        raw = await resp.read()
        assert (resp.status, resp.headers["Content-Encoding"]) == (500, "gzip")
    assert len(raw) < size // 500
    inflated = gzip.decompress(raw)
    assert len(inflated) == size and inflated.startswith(b'{"message": "   ')
