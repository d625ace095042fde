"""A proxied call's lines logged deep in the gateway (here the limiter's shadow
refusal, which names only the upstream) carry the call's request id and user:
read from the request's scope (``logs.CURRENT_REQUEST``) by ``logs.add_request_fields``
when the line is rendered (issues 11, 12)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from gateway.logs import add_request_fields
from gateway.server.app import create_app
from tests.conftest import make_config
from tests.harness import Standins, write_config


@pytest.fixture
def captured() -> Iterator[LogCapture]:
    capture = LogCapture()
    structlog.configure(processors=[add_request_fields, capture])
    yield capture
    structlog.reset_defaults()


def _shadow_trial(data: dict[str, Any]) -> None:
    data["upstreams"]["bizzstream"]["rate_limits"] = [
        {"name": "trial", "match": "*", "limit": 1, "period": "60s", "shadow": True}
    ]


async def test_deep_lines_of_a_proxied_call_carry_its_request_id_and_user(
    aiohttp_client: Any, fresh_standins: Standins, tmp_path: Path, captured: LogCapture
) -> None:
    config = make_config(fresh_standins, write_config(tmp_path, _shadow_trial))
    client = await aiohttp_client(create_app(config))
    for request_id in ("call-1", "call-2"):
        resp = await client.get(
            "/bizzstream/api/v1/documents?ddName=ctx",
            headers={"X-Request-Id": request_id, "X-Gateway-User": "bob"},
        )
        assert resp.status == 200
    refusals = [e for e in captured.entries if e["event"] == "ratelimit_shadow_refusal"]
    assert [(e.get("request_id"), e.get("user"), e["upstream"]) for e in refusals] == [
        ("call-2", "bob", "bizzstream")
    ]
