"""The gateway's own errors, in-process app over loopback to the real stand-ins."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from structlog.testing import capture_logs

from gateway.core.problem import Problem
from gateway.server.app import create_app, secret_values
from gateway.server.keys import MASKER, STATE
from gateway.server.middlewares import problem_response
from gateway.server.requestinfo import INFO, RequestInfo
from tests.conftest import assert_problem, make_config
from tests.harness import CONFIG, Standins


class ExplodingAuth:
    """An auth whose prepare() fails with a message that holds a secret."""

    def needs_body(self, request: Any) -> bool:
        return False

    def account(self, ctx: Any) -> str:
        return "acct"

    async def prepare(self, request: Any, ctx: Any) -> Any:
        raise RuntimeError("boom with standin-bizz-token inside")


async def test_unexpected_exception_is_a_500_naming_only_the_request_id(
    aiohttp_client: Any, fresh_standins: Standins
) -> None:
    app = create_app(make_config(fresh_standins))
    client = await aiohttp_client(app)
    upstreams = app[STATE].upstreams
    upstreams["bizzstream"] = replace(upstreams["bizzstream"], auth=ExplodingAuth())  # type: ignore[arg-type]
    with capture_logs() as logs:
        resp = await client.get("/bizzstream/api/v1/documents?ddName=x")
        body = await resp.read()
    assert resp.status == 500
    problem = assert_problem(body, 500)
    assert problem["code"] == "internal_error"
    assert problem["request_id"] == resp.headers["X-Request-Id"]
    assert problem["request_id"] in problem["detail"]
    assert b"boom" not in body and b"standin-bizz-token" not in body
    errors = [e for e in logs if e.get("event") == "internal_error"]
    assert errors and errors[0]["request_id"] == problem["request_id"]
    assert errors[0].get("exc_info")  # the traceback goes to the log


async def test_request_id_is_kept_or_made(gateway_client: Any) -> None:
    resp = await gateway_client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await gateway_client.get("/bizzstream/api/v1/documents?ddName=x")
    assert len(resp.headers["X-Request-Id"]) == 32
    resp = await gateway_client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert resp.headers["X-Request-Id"] != "bad id\twith spaces"


async def test_malformed_gateway_user_is_a_400(gateway_client: Any) -> None:
    resp = await gateway_client.get(
        "/bizzstream/api/v1/documents?ddName=x", headers={"X-Gateway-User": "a" * 200}
    )
    assert resp.status == 400
    assert assert_problem(await resp.read(), 400)["code"] == "invalid_request"


async def test_unknown_method_on_upstream_still_proxied_and_counted(gateway_client: Any) -> None:
    resp = await gateway_client.request("PATCH", "/bizzstream/__fault/echo")
    assert resp.status == 200
    assert (await resp.json())["method"] == "PATCH"


async def test_caller_authentication_when_configured(
    aiohttp_client: Any, fresh_standins: Standins, tmp_path: Path
) -> None:
    data = yaml.safe_load(CONFIG.read_text())
    data["callers"] = {"tokens": [{"token": "caller-secret-1", "users": "*"}]}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    client = await aiohttp_client(create_app(make_config(fresh_standins, path)))

    resp = await client.get("/bizzstream/__fault/echo")
    assert resp.status == 401
    assert assert_problem(await resp.read(), 401)["code"] == "caller_unauthorized"
    resp = await client.get("/bizzstream/__fault/echo", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401
    resp = await client.get(
        "/bizzstream/__fault/echo", headers={"Authorization": "Bearer caller-secret-1"}
    )
    assert resp.status == 200
    echoed = (await resp.json())["headers"]
    assert echoed["Authorization"] == "Bearer standin-bizz-token"  # never the caller's
    assert (await client.get("/healthz")).status == 200  # health stays open


async def test_readyz_checks_redis(
    aiohttp_client: Any, fresh_standins: Standins, redis_url: str
) -> None:
    client = await aiohttp_client(create_app(make_config(fresh_standins, REDIS_URL=redis_url)))
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["checks"]["redis"] == "ok"


async def test_readyz_fails_when_redis_is_unreachable(
    aiohttp_client: Any, fresh_standins: Standins
) -> None:
    from tests.harness import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    client = await aiohttp_client(create_app(make_config(fresh_standins, REDIS_URL=url)))
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "not ready"
    assert body["checks"]["redis"].startswith("unreachable")


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.2, "1"), (1.0, "1"), (1.001, "2"), (2.001, "3"), (2.5, "3")]
)
def test_retry_after_is_never_earlier_than_retry_after(seconds: float, header: str) -> None:
    """RFC 9110 §10.2.3: a client that obeys the header must not come back too early."""
    request = make_mocked_request("GET", "/bizzstream/x", app=web.Application())
    request[INFO] = RequestInfo(request_id="rid")
    problem = Problem(
        code="rate_limited", detail="slow down", retry_after=seconds, source="gateway"
    )
    assert problem_response(request, problem).headers["Retry-After"] == header


def test_the_redis_password_is_a_known_secret(fresh_standins: Standins) -> None:
    config = make_config(fresh_standins, REDIS_URL="redis://:hunter2-redis@127.0.0.1:1/0")
    assert "hunter2-redis" in secret_values(config)
    app = create_app(config)  # its masker learns them
    assert "hunter2-redis" not in app[MASKER].mask("auth failed for hunter2-redis")
