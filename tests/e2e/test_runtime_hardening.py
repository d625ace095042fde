"""Issue 10, resends and timeouts: each test fails without its fix.

The gateway runs in-process against the real stand-ins (real HTTP over
loopback); the stand-ins' fault routes misbehave on purpose and record every
request they receive, so a resend is counted where it would land.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import problem_reply
from tests.harness import Standins


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
