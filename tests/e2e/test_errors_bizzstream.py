"""BizzStream errors end to end: the in-process gateway over loopback to the real stand-in.

BizzStream does not hide errors in 2xx replies (docs/upstreams.md): a 200 passes
through byte for byte even when its content reads like an error.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.conftest import problem_reply
from tests.harness import Standins


async def problem_of(resp: Any, status: int) -> dict[str, Any]:
    return await problem_reply(resp, status, "bizzstream")


async def test_validation_error_carries_user_message_and_fields(gateway_client: Any) -> None:
    resp = await gateway_client.get("/bizzstream/api/v1/documents")  # ddName missing
    problem = await problem_of(resp, 400)
    assert problem["code"] == "validation_failed"
    assert problem["upstream_status"] == 400
    assert problem["upstream_code"] == "validation_error"
    assert problem["detail"] == 'Query error: "ddName" is required'
    assert problem["user_message"].startswith("Looks like there's an issue")
    assert problem["validation_errors"] == [{"field": "ddName", "message": '"ddName" is required'}]
    assert problem["instance"] == "/bizzstream/api/v1/documents"


async def test_not_found(gateway_client: Any) -> None:
    resp = await gateway_client.get("/bizzstream/api/v1/documents?ddName=x&_id=missing")
    problem = await problem_of(resp, 404)
    assert problem["code"] == "not_found"
    assert problem["upstream_code"] == "not_found"
    assert problem["detail"] == "Document missing was not found."


async def test_html_500_is_an_upstream_error_without_the_page(gateway_client: Any) -> None:
    resp = await gateway_client.get("/bizzstream/__fault/html500")
    problem = await problem_of(resp, 502)
    assert problem["code"] == "upstream_error"
    assert problem["upstream_status"] == 500
    assert problem["detail"] == "bizzstream answered HTTP 500 with an HTML page (not shown)"
    raw = json.dumps(problem)
    assert "Traceback" not in raw and "<html" not in raw and "/srv/app" not in raw


async def test_truncated_and_empty_bodies(gateway_client: Any) -> None:
    problem = await problem_of(await gateway_client.get("/bizzstream/__fault/truncated"), 502)
    assert problem["detail"].endswith("with a JSON body that cannot be parsed")
    problem = await problem_of(await gateway_client.get("/bizzstream/__fault/empty/502"), 502)
    assert problem["detail"] == "bizzstream answered HTTP 502 with an empty body"
    problem = await problem_of(await gateway_client.get("/bizzstream/__fault/text/418"), 502)
    assert problem["detail"] == "bizzstream answered HTTP 418: upstream says 418"


async def test_upstream_429_is_rate_limited_from_upstream(gateway_client: Any) -> None:
    resp = await gateway_client.get("/bizzstream/__fault/empty/429")
    problem = await problem_of(resp, 429)
    assert problem["code"] == "rate_limited" and problem["source"] == "upstream"
    assert problem["retry_after"] == 1.0 and resp.headers["Retry-After"] == "1"


async def test_a_200_that_reads_like_an_error_is_not_mapped(gateway_client: Any) -> None:
    payload = b'{"status": "error", "error": "not_found", "description": "looks like one"}'
    resp = await gateway_client.post(
        "/bizzstream/__fault/echo", data=payload, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    assert (await resp.json())["body"] == payload.decode()


async def test_success_passes_through_byte_for_byte(
    gateway_client: Any, fresh_standins: Standins
) -> None:
    path = "/api/v1/documents?ddName=e2e"
    created = await gateway_client.post(f"/bizzstream{path}", json={"title": "a\u00e9 <b>"})
    assert created.status == 201
    resp = await gateway_client.get(f"/bizzstream{path}")
    assert resp.status == 200
    headers = {"Authorization": "Bearer standin-bizz-token", "environment-id": "env-standin"}
    async with (
        aiohttp.ClientSession() as direct,
        direct.get(fresh_standins.urls["bizzstream"] + path, headers=headers) as upstream,
    ):
        assert await resp.read() == await upstream.read()
