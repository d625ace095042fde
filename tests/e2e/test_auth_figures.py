"""The issue's closing figures, from one run of one gateway process against one
stand-in process: every method on each upstream, a Beeswax expiry under 40
concurrent calls, a BizzStream renewal, the BuzzStream 3-legged flow and StreamOne
JSON arguments. Run with ``pytest -s`` to see them printed.

- logins per 40 concurrent calls after a Beeswax session expiry: must be 1;
- credentials and signatures the stand-ins refused (their own verification):
  must be 0 (Beeswax's expected 401s on the expired session are reported apart).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tests.e2e.auth_support import call, write_config
from tests.harness import gateway_env, launch_standins, running_gateway

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def configure(data: dict[str, Any]) -> None:
    data["token_store_key"] = "figures-store-key"
    data["upstreams"]["bizzstream"]["auth"] = {
        "environment_id": "${BIZZSTREAM_ENVIRONMENT_ID}",
        "client_credentials": {
            "token_url": "${BIZZSTREAM_URL}/oauth/token",
            "client_id": "standin-client",
            "client_secret": "standin-client-secret",
        },
    }


async def test_closing_figures(redis_url: str, tmp_path: Path) -> None:
    standins = launch_standins({"beeswax": {"login_limit_per_minute": 1000},
                                "buzzstream": {"rate_per_second": 1000}})  # fmt: skip
    try:
        env = gateway_env(standins, redis_url)
        with running_gateway(env, write_config(tmp_path, configure)) as gw:
            statuses: list[int] = []

            def go(method: str, path: str, body: bytes | None = None,
                   headers: dict[str, str] | None = None) -> None:  # fmt: skip
                statuses.append(call(gw, method, path, body, headers)[0])

            docs = "/bizzstream/api/v1/documents?ddName=fig"
            for i, method in enumerate(("POST", "GET", "PUT", "PATCH", "DELETE")):
                path = docs if method in ("POST", "GET") else f"{docs}&_id=d0"
                body = json.dumps({"_id": "d0", "n": i}).encode()
                go(method, path, None if method in ("GET", "DELETE") else body, JSON)
            granted = standins.seen("bizzstream")[-1]["headers"]["Authorization"][7:]
            standins.admin("bizzstream", "/__standin/settings", {"expired_tokens": [granted]})
            go("GET", docs)  # token_expired -> one renewal -> replayed

            go("GET", "/beeswax/rest/advertiser")
            go("POST", "/beeswax/rest/advertiser", b'{"advertiser_name": "F"}', JSON)
            go("PUT", "/beeswax/rest/advertiser", b'{"advertiser_id": 1, "advertiser_name": "G"}',
               JSON)  # fmt: skip
            go("DELETE", "/beeswax/rest/advertiser", b'{"advertiser_id": 3}', JSON)
            go("GET", "/beeswax/rest/v2/campaigns?page_size=5")

            for method, path, body, headers in (
                ("GET", "/buzzstream/websites?max_results=2", None, {}),
                ("POST", "/buzzstream/websites", b"url=https%3A%2F%2Ff.example&name=F+f", FORM),
                ("POST", "/buzzstream/people", b'{"name": "P"}', JSON),
                ("PUT", "/buzzstream/websites/1", b"name=Renamed", FORM),
                ("PUT", "/buzzstream/websites/2", b'{"name": "R"}', JSON),
                ("DELETE", "/buzzstream/tags/1", None, {}),
            ):
                go(method, path, body, headers)
            _, got, _ = call(gw, "GET", "/oauth/buzzstream/start?user=fig")
            approve = urlsplit(got["location"])
            _, got, _ = call(f"http://{approve.netloc}", "GET",
                             f"{approve.path}?{approve.query}&user=buzz-fig")  # fmt: skip
            back = urlsplit(got["location"])
            go("GET", f"{back.path}?{back.query}")
            go("GET", "/buzzstream/websites", None, {"X-Gateway-User": "fig"})

            item = {"title": "F", "tags": ["a", "b"], "public": True}
            go("POST", "/streamone/item/create?timezone=UTC", json.dumps(item).encode(), JSON)
            go("POST", "/streamone/item/view?account=a1", b"id=item1", FORM)

            assert set(statuses) <= {200, 201, 204}, statuses
            signed_as = standins.seen("buzzstream")[-1]["principal"]
            refused = {
                name: {k: v for k, v in standins.stats(name).items()
                       if k in ("auth_failures", "signature_invalid", "token_grant_failures")}
                for name in ("bizzstream", "buzzstream", "streamone", "beeswax")
            }  # fmt: skip
            renewed = standins.stats("bizzstream").get("token_expired", 0)

            url = f"{gw.url}/beeswax/rest/advertiser"
            async with aiohttp.ClientSession() as session:

                async def one() -> int:
                    async with session.get(url) as resp:
                        await resp.read()
                        return resp.status

                # 40 warm connections on both hops, so that the 40 calls meet the expiry together
                await asyncio.gather(*(one() for _ in range(40)))
                standins.reset()
                standins.admin("beeswax", "/__standin/expire_sessions")
                expiry = await asyncio.gather(*(one() for _ in range(40)))
            after = standins.stats("beeswax")

    finally:
        standins.stop()
    print(
        f"\nFIGURES: {len(statuses)} calls over every method of the four upstreams, "
        f"{renewed} BizzStream renewal; stand-in refusals {refused}; "
        f"beeswax 40 concurrent calls after expiry -> {after.get('logins', 0)} login(s), "
        f"{after.get('auth_failures', 0)} met the expired session, statuses {sorted(set(expiry))}"
    )
    assert refused == {"bizzstream": {}, "buzzstream": {}, "streamone": {}, "beeswax": {}}
    assert renewed == 1 and signed_as == "buzz-fig"
    assert expiry == [200] * 40 and after.get("logins") == 1
