"""BuzzStream errors end to end: the in-process gateway (OAuth 1.0a signing) over loopback
to the real stand-in: JSON ``error``/``errors``/``message``, HTML, plain text.

BuzzStream does not hide errors in 2xx replies: a 200 passes through byte for byte.
"""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import problem_reply


async def problem_of(resp: Any, status: int) -> dict[str, Any]:
    return await problem_reply(resp, status, "buzzstream")


async def test_json_error_and_message_shapes(gateway_client: Any) -> None:
    problem = await problem_of(await gateway_client.get("/buzzstream/projects/forbidden"), 403)
    assert problem["code"] == "forbidden" and problem["detail"] == "Forbidden"
    problem = await problem_of(await gateway_client.get("/buzzstream/websites/424242"), 404)
    assert problem["code"] == "not_found" and problem["detail"] == "Not found"
    resp = await gateway_client.post("/buzzstream/websites", json={"name": "no url"})
    problem = await problem_of(resp, 400)
    assert problem["code"] == "validation_failed" and problem["detail"] == "url is required"


async def test_errors_list_500(gateway_client: Any) -> None:
    problem = await problem_of(await gateway_client.get("/buzzstream/links/broken"), 502)
    assert problem["code"] == "upstream_error" and problem["upstream_status"] == 500
    assert problem["detail"] == "backend exploded"


async def test_html_pages_are_never_shown(gateway_client: Any) -> None:
    problem = await problem_of(await gateway_client.get("/buzzstream/__fault/html500"), 502)
    assert problem["upstream_status"] == 500
    assert problem["detail"] == "buzzstream answered HTTP 500 with an HTML page (not shown)"
    problem = await problem_of(await gateway_client.get("/buzzstream/tags/html"), 502)
    assert problem["upstream_status"] == 502
    assert "<" not in json.dumps(problem)


async def test_plain_text_is_quoted_when_safe(gateway_client: Any) -> None:
    # A fault route: the stand-in's canned /tags/text would be a sixth signed call within
    # a second, which BuzzStream (and its stand-in) suspends for 2 s.
    problem = await problem_of(await gateway_client.get("/buzzstream/__fault/text/503"), 502)
    assert problem["code"] == "upstream_error" and problem["upstream_status"] == 503
    assert problem["detail"] == "buzzstream answered HTTP 503: upstream says 503"
    problem = await problem_of(await gateway_client.get("/buzzstream/__fault/truncated"), 502)
    assert (
        problem["detail"] == "buzzstream answered HTTP 500 with a JSON body that cannot be parsed"
    )


async def test_a_200_passes_through_byte_for_byte(gateway_client: Any) -> None:
    resp = await gateway_client.get("/buzzstream/__fault/big?size=70000&declare_length=1")
    assert resp.status == 200
    assert await resp.read() == b"x" * 70000
