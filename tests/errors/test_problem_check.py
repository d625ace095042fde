"""The hook in tests/problem_check.py catches an invalid problem body wherever it appears."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.core.problem import Problem
from tests.problem_check import ProblemViolation, violations_of

BAD = b'{"type": "about:blank", "title": "x", "status": 200}'
GOOD = Problem(code="not_found", detail="nothing here").to_dict(instance="/x", request_id="r")


def test_violations_of() -> None:
    assert violations_of(GOOD) == []
    assert violations_of(b"not json") and violations_of(BAD)
    assert violations_of({**GOOD, "code": "teapot"})
    limited = {**GOOD, "code": "rate_limited", "status": 429, "type": GOOD["type"]}
    assert any("retry_after" in v for v in violations_of(limited))


async def _bad_server(aiohttp_server: Any) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=502, body=BAD, content_type="application/problem+json")

    app = web.Application()
    app.router.add_get("/", handler)
    return await aiohttp_server(app)


async def test_an_aiohttp_read_of_an_invalid_problem_fails(
    aiohttp_server: Any, problem_violations: list[str]
) -> None:
    server = await _bad_server(aiohttp_server)
    async with aiohttp.ClientSession() as session, session.get(server.make_url("/")) as resp:
        with pytest.raises(ProblemViolation):
            await resp.json(content_type=None)
    assert len(problem_violations) == 1
    problem_violations.clear()  # provoked on purpose


async def test_a_urllib_read_of_an_invalid_problem_fails(
    aiohttp_server: Any, problem_violations: list[str]
) -> None:
    server = await _bad_server(aiohttp_server)

    def fetch() -> None:
        try:
            urllib.request.urlopen(str(server.make_url("/")), timeout=5)
        except urllib.error.HTTPError as err:
            err.read()

    with pytest.raises(ProblemViolation):
        await asyncio.to_thread(fetch)
    assert len(problem_violations) == 1
    problem_violations.clear()


def test_a_problem_the_gateway_renders_is_checked(problem_violations: list[str]) -> None:
    with pytest.raises(ProblemViolation):
        Problem(code="not_found", detail="").to_json(instance="/x", request_id="r")
    problem_violations.clear()
    Problem(code="not_found", detail="fine").to_json(instance="/x", request_id="r")
    assert problem_violations == []
