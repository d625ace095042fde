"""Beeswax errors end to end: the in-process gateway (with its session login) over
loopback to the real stand-in. Covers the 0.5 envelope in a 200 and in 406/409, the
2.0 shapes, an HTML 500, and the partial failure that passes through with a header.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.conftest import problem_reply
from tests.harness import Standins

PARTIAL = "Gateway-Partial-Failure"


async def problem_of(resp: Any, status: int) -> dict[str, Any]:
    return await problem_reply(resp, status, "beeswax")


async def test_success_false_inside_a_200_is_an_error(gateway_client: Any) -> None:
    resp = await gateway_client.get("/beeswax/rest/advertiser?advertiser_name=nobody")
    problem = await problem_of(resp, 404)
    assert problem["code"] == "not_found"
    assert problem["upstream_status"] == 200
    assert problem["detail"] == "Nothing found matching those criteria"


async def test_406_is_validation_failed_with_the_field(gateway_client: Any) -> None:
    resp = await gateway_client.post("/beeswax/rest/advertiser", json={"alternative_id": None})
    problem = await problem_of(resp, 422)
    assert problem["code"] == "validation_failed"
    assert problem["upstream_status"] == 406
    assert problem["detail"] == "advertiser_name is required"
    assert problem["validation_errors"] == [
        {"field": "advertiser_name", "message": "advertiser_name is required"}
    ]


async def test_strict_mode_409_is_a_conflict_with_the_warnings(gateway_client: Any) -> None:
    body = {"advertiser_id": 1, "alternative_id": "legacy-1"}
    resp = await gateway_client.put("/beeswax/rest/advertiser/strict", json=body)
    problem = await problem_of(resp, 409)
    assert problem["code"] == "conflict"
    assert problem["warnings"] == ["alternative_id is deprecated"]
    assert "strict mode" in problem["detail"]


async def test_html_500_is_an_upstream_error_without_the_page(gateway_client: Any) -> None:
    resp = await gateway_client.get("/beeswax/rest/fail")  # behind the session, HTML page
    problem = await problem_of(resp, 502)
    assert problem["code"] == "upstream_error" and problem["upstream_status"] == 500
    assert problem["detail"] == "beeswax answered HTTP 500 with an HTML page (not shown)"
    assert "Traceback" not in json.dumps(problem)


async def test_v2_shapes(gateway_client: Any) -> None:
    problem = await problem_of(await gateway_client.get("/beeswax/rest/v2/campaigns/999999"), 404)
    assert problem["code"] == "not_found" and problem["detail"] == "Not found."
    resp = await gateway_client.post("/beeswax/rest/v2/campaigns", json={"advertiser_id": 1})
    problem = await problem_of(resp, 400)
    assert problem["code"] == "validation_failed"
    assert problem["validation_errors"] == [{"field": "name", "message": "This field is required."}]
    problem = await problem_of(await gateway_client.delete("/beeswax/rest/v2/campaigns"), 405)
    assert problem["code"] == "method_not_allowed"


async def test_read_only_and_forbidden(gateway_client: Any) -> None:
    problem = await problem_of(await gateway_client.post("/beeswax/rest/account", json={}), 405)
    assert problem["detail"] == "method not allowed on read-only element"
    problem = await problem_of(await gateway_client.get("/beeswax/rest/forbidden_thing"), 403)
    assert problem["code"] == "forbidden"


async def test_partial_failure_passes_through_byte_for_byte_with_the_header(
    gateway_client: Any, fresh_standins: Standins
) -> None:
    bulk = [{"advertiser_id": 1, "advertiser_name": "Renamed"}, {"advertiser_id": 99}]
    resp = await gateway_client.put("/beeswax/rest/advertiser", json=bulk)
    assert resp.status == 200
    assert resp.headers[PARTIAL] == "true"
    through_gateway = await resp.read()
    assert json.loads(through_gateway)["payload"][1]["success"] is False

    # The same (idempotent) call straight to the stand-in gives the same bytes.
    base = fresh_standins.urls["beeswax"]
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as direct:
        login = {"email": "ops@example.com", "password": "standin-password"}
        async with direct.post(base + "/rest/authenticate", json=login) as logged_in:
            assert logged_in.status == 200
        async with direct.put(base + "/rest/advertiser", json=bulk) as upstream:
            assert await upstream.read() == through_gateway

    ok = await gateway_client.get("/beeswax/rest/advertiser?advertiser_id=1")
    assert ok.status == 200 and PARTIAL not in ok.headers
    assert json.loads(await ok.read())["success"] is True
