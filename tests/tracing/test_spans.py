"""Spans of real calls, read from the SDK's in-memory exporter (issue 15, part 4).

The gateway app runs in-process against the real stand-ins; the tracer
provider exports synchronously to an ``InMemorySpanExporter``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.core.retry import RetryPolicy
from gateway.server.app import create_app
from gateway.server.tracing import Tracing
from tests.conftest import make_config
from tests.harness import ROOT, Standins

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


@pytest.fixture
async def traced(
    aiohttp_client: Any, fresh_standins: Standins
) -> AsyncIterator[tuple[TestClient[Any, Any], InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(make_config(fresh_standins), tracing=Tracing.with_provider(provider))
    yield await aiohttp_client(app), exporter
    provider.shutdown()


def by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.kind == kind]


async def test_the_callers_trace_continues_and_the_upstream_gets_the_client_span(
    traced: tuple[TestClient[Any, Any], InMemorySpanExporter], fresh_standins: Standins
) -> None:
    client, exporter = traced
    resp = await client.get(
        "/bizzstream/api/v1/documents?ddName=t",
        headers={"traceparent": TRACEPARENT, "X-Request-Id": "trace-test-1"},
    )
    assert resp.status == 200
    spans = exporter.get_finished_spans()
    (server,) = by_kind(spans, SpanKind.SERVER)
    (upstream,) = by_kind(spans, SpanKind.CLIENT)
    assert server.context is not None and upstream.context is not None
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert server.parent is not None and f"{server.parent.span_id:016x}" == CALLER_SPAN
    assert upstream.parent is not None and upstream.parent.span_id == server.context.span_id
    assert server.name == "GET /bizzstream/{path}"
    assert dict(server.attributes or {}) == {
        "http.request.method": "GET",
        "url.path": "/bizzstream/api/v1/documents",
        "url.scheme": "http",
        "http.response.status_code": 200,
        "gateway.request_id": "trace-test-1",
        "gateway.code": "ok",
        "gateway.upstream": "bizzstream",
        "http.route": "/bizzstream/{path}",
    }
    attrs = dict(upstream.attributes or {})
    assert attrs["http.request.method"] == "GET"
    assert attrs["http.response.status_code"] == 200
    assert attrs["gateway.upstream"] == "bizzstream"
    assert attrs["url.full"].endswith("/api/v1/documents")  # no query string
    assert attrs["server.address"] == "127.0.0.1"
    (seen,) = [s for s in fresh_standins.seen("bizzstream") if s["path"].endswith("/documents")]
    sent = {k.lower(): v for k, v in seen["headers"].items()}
    assert sent["traceparent"] == f"00-{TRACE_ID}-{upstream.context.span_id:016x}-01"


async def test_a_call_without_traceparent_starts_a_trace(
    traced: tuple[TestClient[Any, Any], InMemorySpanExporter],
) -> None:
    client, exporter = traced
    assert (await client.get("/bizzstream/api/v1/documents?ddName=t")).status == 200
    (server,) = by_kind(exporter.get_finished_spans(), SpanKind.SERVER)
    assert server.parent is None


async def test_errors_set_the_code_and_error_type(
    traced: tuple[TestClient[Any, Any], InMemorySpanExporter],
) -> None:
    client, exporter = traced
    assert (await client.get("/nowhere/x")).status == 404
    assert (await client.get("/bizzstream/__fault/text/503")).status == 502
    unknown, failed = by_kind(exporter.get_finished_spans(), SpanKind.SERVER)
    assert (
        unknown.attributes is not None and unknown.attributes["gateway.code"] == "unknown_upstream"
    )
    assert unknown.status.status_code == StatusCode.UNSET  # a 4xx is the caller's error
    assert failed.attributes is not None
    assert failed.attributes["gateway.code"] == "upstream_error"
    assert failed.attributes["error.type"] == "upstream_error"
    assert failed.status.status_code == StatusCode.ERROR
    (upstream,) = by_kind(exporter.get_finished_spans(), SpanKind.CLIENT)
    assert upstream.attributes is not None and upstream.attributes["error.type"] == "503"


async def test_logins_are_events_and_client_spans_and_the_wait_is_a_span(
    traced: tuple[TestClient[Any, Any], InMemorySpanExporter],
) -> None:
    client, exporter = traced
    assert (await client.get("/beeswax/rest/advertiser")).status == 200
    server = by_kind(exporter.get_finished_spans(), SpanKind.SERVER)[0]
    events = [(e.name, dict(e.attributes or {})) for e in server.events]
    assert ("gateway.auth.renewal", {"gateway.upstream": "beeswax", "result": "ok"}) in events
    exchanges = by_kind(exporter.get_finished_spans(), SpanKind.CLIENT)
    assert [s.name for s in exchanges] == ["POST", "GET"]  # the login, then the call
    assert str((exchanges[0].attributes or {})["url.full"]).endswith("/rest/authenticate")

    exporter.clear()
    for _ in range(2):  # BuzzStream: 5/s, burst 1, delayed: the second call waits
        assert (await client.get("/buzzstream/websites")).status == 200
    waits = [s for s in exporter.get_finished_spans() if s.name == "gateway.ratelimit.wait"]
    assert len(waits) == 1
    (wait,) = waits
    assert wait.end_time is not None and wait.start_time is not None
    assert (wait.end_time - wait.start_time) / 1e9 > 0.05
    assert wait.attributes is not None and wait.attributes["gateway.upstream"] == "buzzstream"
    servers = by_kind(exporter.get_finished_spans(), SpanKind.SERVER)
    assert wait.parent is not None and wait.parent.span_id in {
        s.context.span_id for s in servers if s.context is not None
    }


def test_tracing_off_loads_no_tracer() -> None:
    """No OTEL endpoint: neither the gateway's tracing module nor the trace SDK or
    exporter is imported. (redis-py imports parts of the OpenTelemetry API for its
    own opt-in metrics whenever the package is installed: not ours to load.)"""
    code = (
        "import sys, os\n"
        "from gateway.cli import main\n"
        "from gateway.server.app import create_app\n"
        "from gateway.server.tracing_env import load_tracing\n"
        "assert load_tracing(os.environ) is None\n"
        "loaded = ('gateway.server.tracing', 'opentelemetry.sdk.trace', 'opentelemetry.exporter')\n"
        "print(sorted(m for m in sys.modules if m == loaded[0] or m.startswith(loaded[1:])))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "OTEL_SERVICE_NAME": "x"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


async def test_each_retry_attempt_is_a_client_span(
    aiohttp_client: Any, fresh_standins: Standins
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = make_config(fresh_standins)
    bizz = replace(config.upstreams["bizzstream"], retry=RetryPolicy(backoff_base=0.001))
    config = replace(config, upstreams={**config.upstreams, "bizzstream": bizz})
    client = await aiohttp_client(create_app(config, tracing=Tracing.with_provider(provider)))
    fresh_standins.admin("bizzstream", "/__standin/outage", {"status": 503})
    try:
        assert (await client.get("/bizzstream/api/v1/documents?ddName=t")).status == 502
    finally:
        fresh_standins.admin("bizzstream", "/__standin/outage", {})
    spans = exporter.get_finished_spans()
    (server,) = by_kind(spans, SpanKind.SERVER)
    attempts = by_kind(spans, SpanKind.CLIENT)
    assert len(attempts) == 3
    assert all(a.parent is not None and server.context is not None
               and a.parent.span_id == server.context.span_id for a in attempts)  # fmt: skip
    assert [(a.attributes or {})["http.response.status_code"] for a in attempts] == [503] * 3
    provider.shutdown()
