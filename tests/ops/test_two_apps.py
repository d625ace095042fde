"""Two gateway apps in one process keep separate secret maskers (issue 11): each
masks its own secrets in its problem bodies and in the lines logged while it
serves a request, and one app's run-time churn never makes the other forget."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from gateway.core.secrets import MAX_RUNTIME, REDACTED
from gateway.logs import SecretRedactor
from gateway.server.app import create_app
from gateway.server.keys import MASKER
from tests.conftest import make_config
from tests.harness import Standins


@pytest.fixture
def captured() -> Iterator[LogCapture]:
    """The real redactor, with no process-wide masker: only the request's app masks."""
    capture = LogCapture()
    structlog.configure(processors=[SecretRedactor(), capture])
    yield capture
    structlog.reset_defaults()


async def test_two_apps_in_one_process_keep_separate_maskers(
    aiohttp_client: Any, standins: Standins, captured: LogCapture
) -> None:
    key_a, key_b = f"store-key-a-{uuid.uuid4().hex}", f"store-key-b-{uuid.uuid4().hex}"
    app_a = create_app(make_config(standins, GATEWAY_TOKEN_STORE_KEY=key_a))
    app_b = create_app(make_config(standins, GATEWAY_TOKEN_STORE_KEY=key_b))
    masker_a, masker_b = app_a[MASKER], app_b[MASKER]
    assert masker_a is not masker_b

    # Run-time values: a cookie app B's auth obtained stays known however many
    # values app A's rotations remember (one shared, bounded registry forgot it).
    cookie_b = f"cookie-b-{uuid.uuid4().hex}"
    masker_b.remember(cookie_b)
    for i in range(MAX_RUNTIME + 10):
        masker_a.remember(f"rotated-a-{i:06d}-{uuid.uuid4().hex}")
    assert masker_b.mask(f"x {cookie_b}") == f"x {REDACTED}"
    assert masker_a.mask(f"x {cookie_b}") == f"x {cookie_b}"  # never given to A

    client_a, client_b = await aiohttp_client(app_a), await aiohttp_client(app_b)
    for client, own, other in ((client_a, key_a, key_b), (client_b, key_b, key_a)):
        captured.entries.clear()
        resp = await client.get(f"/nosuch/{own}/{other}")
        assert resp.status == 404
        body = await resp.text()
        assert own not in body and REDACTED in body  # the problem renderer: its app's masker
        assert other in body  # the other app's secret was never this app's to know
        lines = [e for e in captured.entries if e.get("event") == "request"]
        assert len(lines) == 1
        assert lines[0]["path"] == f"/nosuch/{REDACTED}/{other}"  # the log: its app's masker
