"""Test traffic that touches every metric family: all four upstreams, errors, quotas.

``healthy_round`` goes to a gateway with good credentials and a real Redis;
``degraded_round`` to one whose Redis is unreachable and whose Beeswax and
StreamOne credentials are wrong, so that auth failures, Redis errors and the
limiter fallback produce series too. Each round returns the statuses it got,
so a test can say what the traffic was when something is missing.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.ops.support import call

JSON = {"Content-Type": "application/json"}

# A config change for the healthy gateway: a `reject` policy to refuse on
# (the shipped policies all delay), and a delay policy on a fault route.
REJECT_POLICY = {
    "name": "reject_probe", "match": "/__fault/empty/*", "limit": 1, "period": "60s",
    "burst": 1, "on_exceed": "reject",
}  # fmt: skip


def with_probe_policies(data: dict[str, Any]) -> None:
    data["upstreams"]["bizzstream"]["rate_limits"] = [REJECT_POLICY]
    data["upstreams"]["bizzstream"]["circuit"] = {}  # its series exist; one 500 a round: closed
    data["upstreams"]["bizzstream"]["retry"] = {}  # its series exist (a 500 is not retried)


def _get(base: str, path: str, **kw: Any) -> int:
    return call(base + path, **kw)[0]


def _parallel(base: str, paths: list[str]) -> list[int]:
    with ThreadPoolExecutor(len(paths)) as pool:
        return list(pool.map(lambda p: _get(base, p), paths))


def healthy_round(base: str) -> dict[str, Any]:
    got: dict[str, Any] = {}
    docs = "/bizzstream/api/v1/documents?ddName=orders"
    got["bizz_get"] = [_get(base, docs) for _ in range(3)]
    got["bizz_post"] = call(base + docs, "POST", json.dumps({"n": 1}).encode(), JSON)[0]
    got["bizz_invalid"] = call(base + docs, "POST", b"[1]", JSON)[0]
    got["bizz_500"] = _get(base, "/bizzstream/__fault/html500")
    got["bizz_slow"] = _get(base, "/bizzstream/__fault/sleep?seconds=0.05")
    got["beeswax"] = [_get(base, "/beeswax/rest/advertiser") for _ in range(2)]
    got["beeswax_report_queue"] = _parallel(base, ["/beeswax/rest/report_queue"] * 2)
    got["buzzstream_burst"] = _parallel(base, ["/buzzstream/websites?max_results=1"] * 7)
    got["streamone"] = call(
        base + "/streamone/item/view", "POST", json.dumps({"id": "item1"}).encode(), JSON
    )[0]
    got["streamone_missing"] = call(
        base + "/streamone/item/view", "POST", json.dumps({"id": "nope"}).encode(), JSON
    )[0]
    got["unknown_upstream"] = _get(base, "/nowhere/x")
    got["gateway_refusal"] = [_get(base, "/bizzstream/__fault/empty/204") for _ in range(2)]
    # Last: an upstream 429 puts the account in a cool-down.
    got["upstream_429"] = _get(base, "/bizzstream/__fault/text/429")
    return got


def degraded_round(base: str) -> dict[str, Any]:
    return {
        "beeswax_bad_password": _get(base, "/beeswax/rest/advertiser"),
        "streamone_bad_psk": call(
            base + "/streamone/item/view", "POST", json.dumps({"id": "item1"}).encode(), JSON
        )[0],
        "bizzstream": _get(base, "/bizzstream/api/v1/documents?ddName=orders"),
        "buzzstream_no_redis": _parallel(base, ["/buzzstream/websites?max_results=1"] * 3),
    }
