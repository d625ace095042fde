"""StreamOne errors end to end: the in-process gateway (signed calls) over loopback to the
real stand-in, which answers every error as HTTP 200 with ``header.status != 0``.

The gateway sends ``/streamone/{command}/{action}`` to ``<base>/api/...``, where the
stand-in has no fault routes; the HTML 500 case therefore mounts the stand-ins' own
fault routes (:mod:`gateway.standins.faults`) under ``/api`` on a loopback server.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from structlog.testing import capture_logs

from gateway.server.app import create_app
from gateway.standins.faults import add_fault_routes
from tests.conftest import make_config, problem_reply
from tests.harness import Standins


async def problem_of(resp: Any, status: int) -> dict[str, Any]:
    return await problem_reply(resp, status, "streamone")


async def test_not_found_inside_a_200(gateway_client: Any) -> None:
    resp = await gateway_client.post("/streamone/item/view", data={"id": "nope"})
    problem = await problem_of(resp, 404)
    assert problem["code"] == "not_found"
    assert problem["upstream_status"] == 200
    assert problem["upstream_code"] == "ITEM_NOT_FOUND"
    assert problem["detail"] == "streamone status 120 ITEM_NOT_FOUND: Item nope not found"


async def test_general_and_domain_codes(gateway_client: Any) -> None:
    problem = await problem_of(
        await gateway_client.post("/streamone/user/create", json={"username": "alice"}), 409
    )
    assert problem["code"] == "conflict"
    assert problem["upstream_code"] == "USER_USERNAME_ALREADY_EXISTS"
    problem = await problem_of(await gateway_client.post("/streamone/account/delete"), 403)
    assert (problem["code"], problem["upstream_code"]) == ("forbidden", "ACCESS_DENIED")
    problem = await problem_of(await gateway_client.post("/streamone/item/crash"), 502)
    assert (problem["code"], problem["upstream_code"]) == ("upstream_error", "INTERNAL_ERROR")
    problem = await problem_of(await gateway_client.post("/streamone/item/create"), 400)
    assert (problem["code"], problem["upstream_code"]) == ("validation_failed", "INPUT_ERROR")
    problem = await problem_of(await gateway_client.post("/streamone/nope/nothing"), 404)
    assert problem["upstream_code"] == "INVALID_ACTION"


async def test_success_passes_through(gateway_client: Any) -> None:
    resp = await gateway_client.post("/streamone/item/view", data={"id": "item1"})
    assert resp.status == 200
    body = json.loads(await resp.read())
    assert body["header"]["status"] == 0 and body["body"]["id"] == "item1"


async def test_bad_credentials_are_upstream_auth_failed_and_logged_loudly(
    aiohttp_client: Any, fresh_standins: Standins
) -> None:
    app = create_app(make_config(fresh_standins, STREAMONE_PSK="not-the-psk"))
    client = await aiohttp_client(app)
    with capture_logs() as logs:
        resp = await client.post("/streamone/item/view", data={"id": "item1"})
        problem = await problem_of(resp, 502)
    assert problem["code"] == "upstream_auth_failed"
    assert problem["upstream_code"] == "AUTHENTICATION_FAILED"
    assert problem["upstream_status"] == 200
    assert "not-the-psk" not in json.dumps(problem)
    loud = [e for e in logs if e.get("event") == "upstream_problem"]
    assert loud and loud[0]["log_level"] == "error"
    assert loud[0]["upstream_code"] == "AUTHENTICATION_FAILED"
    assert loud[0]["request_id"] == problem["request_id"]


async def test_html_500_and_unreadable_bodies(
    aiohttp_client: Any, aiohttp_server: Any, fresh_standins: Standins
) -> None:
    faults = web.Application()
    add_fault_routes(faults, "/api")
    server = await aiohttp_server(faults)
    config = make_config(fresh_standins, STREAMONE_URL=f"http://127.0.0.1:{server.port}")
    client = await aiohttp_client(create_app(config))

    problem = await problem_of(await client.post("/streamone/__fault/html500"), 502)
    assert problem["code"] == "upstream_error" and problem["upstream_status"] == 500
    assert problem["detail"] == "streamone answered HTTP 500 with an HTML page (not shown)"
    assert "Traceback" not in json.dumps(problem)
    problem = await problem_of(await client.post("/streamone/__fault/truncated"), 502)
    assert problem["detail"].endswith("with a JSON body that cannot be parsed")
    # A 200 without the envelope is not an error: it passes through unchanged.
    resp = await client.post("/streamone/__fault/echo")
    assert resp.status == 200 and (await resp.json())["path"] == "/api/__fault/echo"
    # An HTTP 429 is the upstream's refusal; the gateway then cools the account down.
    problem = await problem_of(await client.post("/streamone/__fault/empty/429"), 429)
    assert (problem["code"], problem["source"]) == ("rate_limited", "upstream")
    problem = await problem_of(await client.post("/streamone/item/view"), 429)
    assert problem["source"] == "gateway"
