"""A real gateway process exports its spans over OTLP/HTTP to a real receiver on loopback.

Configured only by the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_SERVICE_NAME``, ``OTEL_BSP_SCHEDULE_DELAY``); the receiver decodes the
protobuf exports with the OTLP messages.
"""

from __future__ import annotations

from tests.harness import Standins, call, free_port, gateway_env, running_gateway
from tests.tracing.otlp_receiver import attributes, otlp_receiver

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_spans_reach_an_otlp_http_receiver(fresh_standins: Standins, redis_url: str) -> None:
    port = free_port()
    env = gateway_env(
        fresh_standins,
        redis_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_SERVICE_NAME="gateway-test",
        OTEL_BSP_SCHEDULE_DELAY="50",
    )
    with otlp_receiver(port) as received, running_gateway(env) as gw:
        status, headers, _ = call(
            gw, "GET", "/bizzstream/api/v1/documents?ddName=otlp", None,
            {"traceparent": TRACEPARENT},
        )  # fmt: skip
        assert status == 200
        spans = received.wait_for(2)
    mine = [s for s in spans if s["traceId"] == TRACE_ID]
    kinds = sorted(s["kind"] for s in mine)
    assert kinds == ["SPAN_KIND_CLIENT", "SPAN_KIND_SERVER"], spans
    server = next(s for s in mine if s["kind"] == "SPAN_KIND_SERVER")
    assert server["resource"]["service.name"] == "gateway-test"
    attrs = attributes(server)
    assert attrs["gateway.upstream"] == "bizzstream"
    assert attrs["gateway.code"] == "ok"
    assert attrs["gateway.request_id"] == headers["x-request-id"]
    assert server["name"] == "GET /bizzstream/{path}"
    assert server["parentSpanId"] == "00f067aa0ba902b7"
    client = next(s for s in mine if s["kind"] == "SPAN_KIND_CLIENT")
    assert client["parentSpanId"] == server["spanId"]
