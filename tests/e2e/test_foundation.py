"""End to end, real processes on loopback: stand-ins, one gateway process, real HTTP.

Covers issue 2's acceptance: BizzStream 200, the other three reached, an
unknown upstream, hostile paths, header hygiene, timeout 504, closed port 503.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_problem
from tests.harness import (
    Gateway,
    Standins,
    call,
    free_port,
    gateway_env,
    launch_gateway,
    write_config,
)


def marked(seen: list[dict[str, Any]], marker: str) -> list[dict[str, Any]]:
    return [
        s
        for s in seen
        if {k.lower(): v for k, v in s["headers"].items()}.get("x-request-id") == marker
    ]


@pytest.fixture(scope="module")
def gateway(standins: Standins) -> Iterator[Gateway]:
    gw = launch_gateway(gateway_env(standins))
    yield gw
    gw.stop()


def test_bizzstream_answers_200_through_the_gateway(gateway: Gateway, standins: Standins) -> None:
    status, headers, body = call(
        gateway, "POST", "/bizzstream/api/v1/documents?ddName=orders",
        json.dumps({"number": 7}).encode(), {"Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 201, body
    created = json.loads(body)["document"]
    status, headers, body = call(
        gateway, "GET", f"/bizzstream/api/v1/documents?ddName=orders&_id={created['_id']}"
    )
    assert status == 200
    assert json.loads(body)["status"] == "ok"
    assert len(headers["x-request-id"]) >= 16


@pytest.mark.parametrize(
    ("upstream", "method", "path", "expected_path"),
    [
        ("beeswax", "GET", "/beeswax/rest/advertiser", "/rest/advertiser"),
        ("buzzstream", "GET", "/buzzstream/websites?max_results=2", "/v1/websites"),
        ("streamone", "POST", "/streamone/item/view", "/api/item/view"),
    ],
)
def test_calls_to_the_other_upstreams_reach_their_stand_ins(
    gateway: Gateway, standins: Standins, upstream: str, method: str, path: str,
    expected_path: str,
) -> None:  # fmt: skip
    marker = hashlib.sha1(path.encode()).hexdigest()
    call(gateway, method, path, b"" if method == "POST" else None, {"X-Request-Id": marker})
    seen = marked(standins.seen(upstream), marker)
    assert seen, f"{upstream} stand-in never saw the call"
    assert seen[-1]["path"] == expected_path
    assert seen[-1]["method"] == method


def test_unknown_upstream_is_a_problem(gateway: Gateway) -> None:
    status, headers, body = call(gateway, "GET", "/nowhere/api/x")
    assert status == 404
    assert headers["content-type"].startswith("application/problem+json")
    problem = assert_problem(body, 404)
    assert problem["code"] == "unknown_upstream"
    assert problem["upstream"] is None
    assert problem["request_id"] == headers["x-request-id"]
    assert problem["instance"] == "/nowhere/api/x"


HOSTILE = [
    "/bizzstream/../admin",
    "/bizzstream/api/../../admin",
    "/bizzstream/%2e%2e/admin",
    "/bizzstream/api/%2E%2e/%2e%2e/admin",
    "/bizzstream//evil.example.com/x",
    "/bizzstream/@evil.example.com/x",
    "/bizzstream/user@evil.example.com/x",
    "/bizzstream/api%5c..%5cadmin",
    "/bizzstream/api\\..\\admin",
    "/bizzstream/http://evil.example.com/x",
    "/bizzstream/http:%2f%2fevil.example.com/x",
    "/bizzstream/api%2f..%2fadmin",
    "/bizzstream/api%2Fv1",
    "http://evil.example.com/bizzstream/api",
    "/buzzstream/..",
    "/buzzstream/../../v2/x",
]


@pytest.mark.parametrize("path", HOSTILE)
def test_hostile_paths_never_leave_the_base_path(
    gateway: Gateway, standins: Standins, path: str
) -> None:
    marker = hashlib.sha1(path.encode()).hexdigest()
    status, _, body = call(gateway, "GET", path, headers={"X-Request-Id": marker})
    upstream = "buzzstream" if "buzzstream" in path else "bizzstream"
    seen = marked(standins.seen(upstream), marker)
    if status == 400:
        assert assert_problem(body, 400)["code"] in ("invalid_request",)
        assert not seen, "a refused path must not reach the upstream"
    else:
        # Normalised instead of refused: it must still sit below the base path.
        base = "/v1/" if upstream == "buzzstream" else "/"
        assert all(s["path"].startswith(base) and ".." not in s["path"] for s in seen), seen
        assert status in (400, 404), (status, body)


def test_caller_credentials_and_connection_named_headers_are_not_forwarded(
    gateway: Gateway,
) -> None:
    status, headers, body = call(
        gateway,
        "POST",
        "/bizzstream/__fault/echo?b=2&a=1&b=1",
        b'{"raw": "body \\u00e9"}',
        {
            "Authorization": "Bearer caller-own-token",
            "Cookie": "session=caller-cookie",
            "Proxy-Authorization": "Basic cHJveHk6cHc=",
            "Connection": "keep-alive, X-Hop-Secret",
            "X-Hop-Secret": "must-not-pass",
            "Keep-Alive": "timeout=5",
            "X-Gateway-User": "alice",
            "X-Request-Id": "req-12345",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "Content-Type": "application/json",
            "X-Custom": "kept",
        },
    )
    assert status == 200, body
    echo: dict[str, Any] = json.loads(body)
    sent = {k.lower(): v for k, v in echo["headers"].items()}
    assert "cookie" not in sent
    assert "proxy-authorization" not in sent
    assert "x-hop-secret" not in sent
    assert "keep-alive" not in sent
    assert "x-gateway-user" not in sent
    assert sent["authorization"] == "Bearer standin-bizz-token"  # the gateway's own
    assert sent["environment-id"] == "env-standin"
    assert sent["x-request-id"] == "req-12345"
    assert sent["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert sent["x-custom"] == "kept"
    assert echo["query_string"] == "b=2&a=1&b=1"  # order and repeats kept
    assert echo["body"] == '{"raw": "body \\u00e9"}'
    assert headers["x-request-id"] == "req-12345"


def test_large_reply_streams_through_byte_for_byte(gateway: Gateway) -> None:
    status, _, body = call(gateway, "GET", "/bizzstream/__fault/big?size=3000000")
    assert status == 200
    assert body == b"x" * 3_000_000


def test_body_over_the_limit_is_413(gateway: Gateway, tmp_path: Path) -> None:
    status, _, body = call(
        gateway, "POST", "/bizzstream/__fault/echo", b"x" * (10 * 1024 * 1024 + 1)
    )
    assert status == 413
    assert assert_problem(body, 413)["code"] == "payload_too_large"


def test_upstream_that_never_answers_gives_504_within_the_timeout(
    standins: Standins, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        lambda d: d["upstreams"]["bizzstream"].update(timeouts={"connect": "1s", "total": "1s"}),
    )
    gw = launch_gateway(gateway_env(standins), config)
    try:
        started = time.monotonic()
        status, _, body = call(gw, "GET", "/bizzstream/__fault/sleep?seconds=30")
        elapsed = time.monotonic() - started
    finally:
        gw.stop()
    assert status == 504
    problem = assert_problem(body, 504)
    assert problem["code"] == "upstream_timeout"
    assert problem["upstream"] == "bizzstream"
    assert elapsed < 5, elapsed


def test_closed_port_gives_503(standins: Standins) -> None:
    env = gateway_env(standins)
    env["BIZZSTREAM_URL"] = f"http://127.0.0.1:{free_port()}"
    gw = launch_gateway(env)
    try:
        status, _, body = call(gw, "GET", "/bizzstream/api/v1/documents?ddName=x")
    finally:
        gw.stop()
    assert status == 503
    problem = assert_problem(body, 503)
    assert problem["code"] == "upstream_unavailable"
    assert problem["upstream"] == "bizzstream"
    assert "127.0.0.1" not in problem["detail"]


def test_health_endpoints_are_reserved(gateway: Gateway) -> None:
    assert call(gateway, "GET", "/healthz")[0] == 200
    status, _, body = call(gateway, "GET", "/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"
    status, _, body = call(gateway, "GET", "/metrics")
    assert status == 200 and b"gateway_requests_total" in body
    assert call(gateway, "POST", "/healthz")[0] == 405
