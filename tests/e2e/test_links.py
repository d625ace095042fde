"""Links rewritten to the configured ``public_url`` (in-process gateway, real stand-ins)."""

from __future__ import annotations

from typing import Any

from gateway.server.app import create_app
from tests.conftest import make_config
from tests.harness import Standins

PUBLIC = "https://gw.example/sidecar"


async def test_public_url_wins_over_the_host(aiohttp_client: Any, fresh_standins: Standins) -> None:
    config = make_config(fresh_standins, GATEWAY_PUBLIC_URL=PUBLIC + "/")
    assert config.public_url_set and config.public_url == PUBLIC
    client = await aiohttp_client(create_app(config))
    resp = await client.get("/buzzstream/websites?expand=true", headers={"Host": "other.example"})
    assert resp.status == 200
    body = await resp.json()
    assert [w["uri"] for w in body["list"]] == [
        f"{PUBLIC}/buzzstream/websites/1",
        f"{PUBLIC}/buzzstream/websites/2",
    ]
    resp = await client.get(
        "/beeswax/__fault/location/302?path=/rest/advertiser", allow_redirects=False
    )
    assert resp.status == 302
    assert resp.headers["Location"] == f"{PUBLIC}/beeswax/rest/advertiser"


async def test_without_public_url_the_request_host_is_used(
    aiohttp_client: Any, fresh_standins: Standins
) -> None:
    config = make_config(fresh_standins)
    assert not config.public_url_set
    client = await aiohttp_client(create_app(config))
    resp = await client.get("/buzzstream/websites/1", headers={"Host": "gw.internal:8080"})
    assert (await resp.json())["uri"] == "http://gw.internal:8080/buzzstream/websites/1"
