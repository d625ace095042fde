"""What a deployment exposes besides the proxy, with real processes (issue 14).

- the ``Server`` header names the product, never aiohttp or its version, on
  every listener and even on a request aiohttp cannot parse;
- a problem's ``type`` URI is the deployment's own (``<public_url>/problems/<code>``
  by default, or ``problem_base_url``) and the gateway serves it;
- the onboarding listener (``GATEWAY_ONBOARDING_LISTEN``) is what a browser
  reaches in a sidecar: the BuzzStream callback and the problem pages, nothing
  else (no proxying, no ``start``, no metrics).
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import assert_problem
from tests.e2e.auth_support import call, write_config
from tests.harness import Standins, free_port, gateway_env, running_gateway

pytestmark = pytest.mark.e2e
CALLER = {"Authorization": "Bearer caller-token-for-tests"}


def raw_reply(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_server_header_and_problem_pages(standins: Standins) -> None:
    ops = free_port()
    env = gateway_env(standins, GATEWAY_OPS_LISTEN=f"127.0.0.1:{ops}")
    with running_gateway(env) as gw:
        port = int(gw.url.rsplit(":", 1)[1])
        for url, path in ((gw.url, "/healthz"), (gw.url, "/nowhere/x"),
                          (gw.url, "/bizzstream/api/v1/documents?ddName=orders"),
                          (f"http://127.0.0.1:{ops}", "/metrics")):  # fmt: skip
            status, headers, _ = call(url, "GET", path)
            assert headers["server"] == "gateway", (path, headers)
        garbage = raw_reply(port, b"NOT HTTP AT ALL\r\n\r\n")
        assert garbage.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), garbage[:200]
        assert b"aiohttp" not in garbage.lower() and b"\r\nServer: gateway\r\n" in garbage

        # The type of a problem is the deployment's own URI, and it resolves.
        status, _, body = call(gw, "GET", "/nowhere/x")
        problem = assert_problem(body, 404)
        assert problem["type"] == f"{gw.url}/problems/unknown_upstream"
        status, headers, page = call(gw, "GET", "/problems/unknown_upstream")
        assert status == 200 and headers["content-type"].startswith("application/json")
        entry = json.loads(page)
        assert entry["type"] == problem["type"] and entry["title"] == problem["title"]
        assert (entry["code"], entry["status"]) == ("unknown_upstream", 404)
        status, headers, page = call(gw, "GET", "/problems/rate_limited", None,
                                     {"Accept": "text/html"})  # fmt: skip
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b"rate_limited" in page and b"Retry-After" in page
        codes = [e["code"] for e in json.loads(call(gw, "GET", "/problems")[2])]
        assert "internal_error" in codes and len(codes) == 15
        assert_problem(call(gw, "GET", "/problems/no_such_code")[2], 404)


def test_problem_base_url_is_configurable(standins: Standins, tmp_path: Any) -> None:
    def change(data: dict[str, Any]) -> None:
        data["problem_base_url"] = "https://docs.example.com/gateway/errors/"

    with running_gateway(gateway_env(standins), write_config(tmp_path, change)) as gw:
        problem = assert_problem(call(gw, "GET", "/nowhere/x")[2], 404)
        assert problem["type"] == "https://docs.example.com/gateway/errors/unknown_upstream"


def test_onboarding_listener_serves_the_callback_and_nothing_else(
    standins: Standins, redis_url: str, tmp_path: Any
) -> None:
    onboarding = free_port()
    public = f"http://127.0.0.1:{onboarding}"

    def change(data: dict[str, Any]) -> None:
        data["callers"] = {"tokens": [{"token": "caller-token-for-tests", "users": "*"}]}

    env = gateway_env(
        standins, redis_url,
        GATEWAY_ONBOARDING_LISTEN=f"127.0.0.1:{onboarding}", GATEWAY_PUBLIC_URL=public,
    )  # fmt: skip
    with running_gateway(env, write_config(tmp_path, change)) as gw:
        # Nothing but the callback and the problem pages on the browser-facing port.
        for method, path in (("GET", "/buzzstream/websites"), ("GET", "/metrics"),
                             ("GET", "/healthz"), ("GET", "/oauth/buzzstream/start?user=a"),
                             ("POST", "/bizzstream/api/v1/documents?ddName=orders")):  # fmt: skip
            status, headers, body = call(public, method, path, None, CALLER)
            assert status in (404, 405), (path, status)
            assert headers["server"] == "gateway"
            assert_problem(body, status)
        assert call(public, "GET", "/problems/forbidden")[0] == 200

        # The app starts onboarding on the loopback proxy port; the browser comes
        # back through the onboarding listener, the one public_url names.
        status, headers, _ = call(gw, "GET", "/oauth/buzzstream/start?user=dora", None, CALLER)
        assert status == 302, headers
        approve = urlsplit(headers["location"])
        status, headers, _ = call(f"http://{approve.netloc}", "GET",
                                  f"{approve.path}?{approve.query}&user=buzz-dora")  # fmt: skip
        back = urlsplit(headers["location"])
        assert f"{back.scheme}://{back.netloc}" == public
        assert parse_qs(back.query)["oauth_token"]
        status, _, reply = call(public, "GET", f"{back.path}?{back.query}")
        assert status == 200, reply
        assert json.loads(reply) == {
            "status": "connected",
            "upstream": "buzzstream",
            "user": "dora",
        }

        standins.reset()
        as_dora = {**CALLER, "X-Gateway-User": "dora"}
        assert call(gw, "GET", "/buzzstream/websites", None, as_dora)[0] == 200
        assert [s["principal"] for s in standins.seen("buzzstream")] == ["buzz-dora"]
