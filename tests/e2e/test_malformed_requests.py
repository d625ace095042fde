"""Requests aiohttp's parser refuses, against a real gateway process.

They never reach a middleware; the gateway still answers each with a
problem+json 4xx (``invalid_request``, ``payload_too_large`` for a 413) that
never echoes the input, with ``Server: gateway`` and a request id, logs it once
at WARNING without the request line, and counts it in
``gateway_requests_total{upstream="none",method="OTHER"}``.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_public_surface import raw_reply
from tests.harness import Standins, call, gateway_env, running_gateway
from tests.problem_check import violations_of

pytestmark = pytest.mark.e2e
MARKER = "s3cr3t-marker-7f1e"
REQUESTS = {
    "request line": f"GET /bizzstream/x?token={MARKER} HTTP/9.9\r\nHost: a\r\n\r\n",
    "not http": f"\x16\x03\x01{MARKER}\r\n\r\n",
    "header": f"GET /x HTTP/1.1\r\nHost: a\r\nBad Header{MARKER}: 1\r\n\r\n",
    "oversized header": f"GET /x HTTP/1.1\r\nHost: a\r\nX-A: {MARKER}{'a' * 9000}\r\n\r\n",
    "content-length": f"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1{MARKER}\r\n\r\n",
    "transfer-encoding": f"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {MARKER}\r\n"
    "Content-Length: 3\r\n\r\nabc",
}


def test_parser_refusals_are_problems_without_the_input(standins: Standins) -> None:
    with running_gateway(gateway_env(standins)) as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        for name, request in REQUESTS.items():
            reply = raw_reply(port, request.encode("latin-1"))
            head, _, body = reply.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:])
            }
            assert 400 <= status < 500, (name, reply[:300])
            assert headers[b"content-type"] == b"application/problem+json", (name, reply[:300])
            assert headers[b"server"] == b"gateway", name
            assert MARKER.encode() not in reply, (name, reply[:300])
            assert violations_of(body) == [], (name, body)
            problem = json.loads(body)
            assert problem["status"] == status and problem["upstream"] is None, name
            assert problem["code"] == ("payload_too_large" if status == 413 else "invalid_request")
            assert problem["instance"] == "/" and problem["type"].startswith(gw.url)
            assert headers[b"x-request-id"].decode() == problem["request_id"], name

        _, _, metrics = call(gw, "GET", "/metrics")
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.decode().splitlines()
            if line.startswith("gateway_requests_total{")
            and 'method="OTHER"' in line
            and 'upstream="none"' in line
        )
        assert counted == len(REQUESTS), metrics.decode()[-3000:]
    logs = [line for line in gw.log_lines() if line.get("event") == "malformed_request"]
    assert len(logs) >= len(REQUESTS) - 1  # a first non-HTTP request is logged at debug
    assert all(line["level"] == "warning" for line in logs)
    assert MARKER not in gw.logs()
