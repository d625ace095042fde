"""A real OTLP/HTTP trace receiver on loopback: ``POST /v1/traces`` with protobuf bodies.

It runs an aiohttp server in a thread of its own, decodes each export with the
OTLP protobuf messages and keeps the spans, so a test can read what a real
gateway process exported (and the raw bytes, for the secret scan).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class Received:
    raw: list[bytes] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)  # each with its "resource"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.spans) >= count:
                    return list(self.spans)
            time.sleep(0.05)
        with self.lock:
            raise AssertionError(f"{len(self.spans)} spans received, wanted {count}")


def attributes(span: dict[str, Any]) -> dict[str, Any]:
    """OTLP key/value attributes as a plain dict (string, int, bool values)."""
    out = {}
    for item in span.get("attributes", []):
        value = item["value"]
        out[item["key"]] = next(iter(value.values())) if value else None
    return out


@contextlib.contextmanager
def otlp_receiver(port: int) -> Iterator[Received]:
    received = Received()

    async def traces(request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf", request.content_type
        body = await request.read()
        message = ExportTraceServiceRequest.FromString(body)
        decoded = MessageToDict(message)
        with received.lock:
            received.raw.append(body)
            for resource_spans in decoded.get("resourceSpans", []):
                resource = attributes(resource_spans.get("resource", {}))
                for scope in resource_spans.get("scopeSpans", []):
                    for span in scope.get("spans", []):
                        for key in ("traceId", "spanId", "parentSpanId"):
                            if key in span:  # bytes fields come as base64: make them hex
                                span[key] = base64.b64decode(span[key]).hex()
                        received.spans.append({**span, "resource": resource})
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.run_until_complete(runner.cleanup())
        loop.close()
