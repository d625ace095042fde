"""Every line logged while serving a request carries its request id (and user):
the outermost middleware sets the request's scope (``logs.CURRENT_REQUEST``),
which ``logs.add_request_fields`` reads when a line is rendered (issues 11, 12)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from structlog.testing import LogCapture

from gateway.logs import add_request_fields, get_logger
from gateway.metrics import create_metrics
from gateway.server.keys import METRICS
from gateway.server.middlewares import ENVELOPE

deep = get_logger("gateway.deep")


@pytest.fixture
def captured() -> Iterator[LogCapture]:
    capture = LogCapture()
    structlog.configure(processors=[add_request_fields, capture])
    yield capture
    structlog.reset_defaults()


async def _deep_handler(request: web.Request) -> web.Response:
    deep.info("deep_line")  # says nothing of the request itself
    return web.Response(text="ok")


async def test_lines_logged_deep_in_a_request_carry_its_id_and_user(
    aiohttp_client: Any, captured: LogCapture
) -> None:
    app = web.Application(middlewares=ENVELOPE)
    app[METRICS] = create_metrics(CollectorRegistry())
    app.router.add_get("/x", _deep_handler)
    client = await aiohttp_client(app)
    first = await client.get("/x", headers={"X-Request-Id": "req-one", "X-Gateway-User": "alice"})
    second = await client.get("/x", headers={"X-Request-Id": "req-two"})  # same connection
    assert first.status == second.status == 200
    deep_lines = [e for e in captured.entries if e["event"] == "deep_line"]
    assert [(e.get("request_id"), e.get("user")) for e in deep_lines] == [
        ("req-one", "alice"),
        ("req-two", None),  # nothing of the first request stays bound
    ]
    deep.info("after")  # outside any request: nothing bound
    assert "request_id" not in captured.entries[-1]
