"""OpenTelemetry spans for each call (imported only when tracing is on, see ``tracing_env``).

- **Server span** per proxied call (``SERVER``), started by :meth:`Tracing.middleware`
  (outermost), continuing the caller's W3C ``traceparent``. Name ``{method}
  /{upstream}/{path}``; attributes ``http.request.method``, ``url.path``,
  ``url.scheme``, ``http.route``, ``http.response.status_code``, ``error.type``
  (5xx), ``gateway.upstream``, ``gateway.code``, ``gateway.request_id``.
- **Client span** per HTTP exchange with an upstream (``CLIENT``): every
  attempt, login, token grant and renewal, from aiohttp's ``TraceConfig``. The
  upstream receives *this* span's context in ``traceparent`` (the caller's is
  replaced, its ``tracestate`` kept). Attributes ``http.request.method``,
  ``server.address``, ``server.port``, ``url.full`` (without the query),
  ``http.response.status_code``, ``error.type``, ``gateway.upstream``.
  The span ends when the reply's head arrives.
- The rate-limit wait is a span of its own (``gateway.ratelimit.wait``);
  logins and renewals are events (``gateway.auth.renewal``, ``result``) on the
  server span, besides the client span of their HTTP exchange.

No header, query string or body is ever recorded, so no credential can reach
an exported span (tests/e2e/test_secrets.py scans them). Baggage is not
propagated: a caller's baggage is not the third parties' business.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import Counter

from gateway.core.reserved import QUIET
from gateway.server.middlewares import Handler
from gateway.server.requestinfo import INFO

SERVICE_NAME = "gateway"
_PROPAGATOR = TraceContextTextMapPropagator()


class Tracing:
    """A tracer and, when the gateway made it, the provider to flush at shutdown."""

    def __init__(self, tracer: trace.Tracer, provider: TracerProvider | None = None) -> None:
        self.tracer = tracer
        self.provider = provider

    @classmethod
    def from_env(cls) -> Tracing:
        """OTLP/HTTP export as the ``OTEL_*`` variables say (endpoint, headers, sampler...).

        ``service.name`` is ``gateway`` unless ``OTEL_SERVICE_NAME`` or
        ``OTEL_RESOURCE_ATTRIBUTES`` say otherwise. Spans are exported by a
        background thread in batches (``OTEL_BSP_*``): the request path never
        waits for the collector.
        """
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        resource = Resource({"service.name": SERVICE_NAME}).merge(Resource.create())
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider.get_tracer("gateway"), provider)

    @classmethod
    def with_provider(cls, provider: TracerProvider) -> Tracing:
        """For tests: spans go to the given provider, which the caller owns."""
        return cls(provider.get_tracer("gateway"))

    async def aclose(self) -> None:
        if self.provider is not None:  # flushes the last batch (blocking I/O: off the loop)
            await asyncio.get_running_loop().run_in_executor(None, self.provider.shutdown)

    # -- server side -------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in QUIET:
            return await handler(request)
        parent = _PROPAGATOR.extract(dict(request.headers.items()))
        with self.tracer.start_as_current_span(
            request.method,
            context=parent,
            kind=SpanKind.SERVER,
            record_exception=False,
            set_status_on_exception=False,
            attributes={
                "http.request.method": request.method,
                "url.path": request.path[:512],
                "url.scheme": request.scheme,
            },
        ) as span:
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except asyncio.CancelledError:
                status = 499
                raise
            finally:
                _finish_server_span(span, request, status)

    def span(
        self, name: str, attributes: Mapping[str, Any]
    ) -> contextlib.AbstractContextManager[Any]:
        """A child span of the current one (the rate-limit wait)."""
        return self.tracer.start_as_current_span(name, attributes=dict(attributes))

    def renewal_hook(self, upstream: str, renewals: Counter) -> Callable[[str], None]:
        """``AuthIO.report`` (``server/auth_io.py``): count the login or renewal, and add an event
        ``gateway.auth.renewal`` with its ``result`` to the current span."""

        def renewed(result: str) -> None:
            renewals.labels(upstream, result).inc()
            trace.get_current_span().add_event(
                "gateway.auth.renewal", {"gateway.upstream": upstream, "result": result}
            )

        return renewed

    # -- client side -------------------------------------------------------

    def trace_config(self, upstream: str) -> aiohttp.TraceConfig:
        """aiohttp callbacks: one CLIENT span per upstream exchange of ``upstream``."""
        config = aiohttp.TraceConfig()
        tracer = self.tracer

        async def start(
            _: Any, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
        ) -> None:
            url = params.url
            ctx.span = tracer.start_span(
                params.method,
                kind=SpanKind.CLIENT,
                attributes={
                    "http.request.method": params.method,
                    "server.address": url.host or "",
                    "server.port": url.port or 0,
                    "url.full": str(url.with_query(None).with_fragment(None)),
                    "gateway.upstream": upstream,
                },
            )
            params.headers.popall("traceparent", None)
            _PROPAGATOR.inject(params.headers, context=trace.set_span_in_context(ctx.span))

        async def end(_: Any, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
            status = params.response.status
            ctx.span.set_attribute("http.response.status_code", status)
            if status >= 500:
                ctx.span.set_attribute("error.type", str(status))
                ctx.span.set_status(Status(StatusCode.ERROR))
            ctx.span.end()

        async def failed(
            _: Any, ctx: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
        ) -> None:
            # The exception's type only: its text may name a URL with its query.
            kind = type(params.exception).__name__
            ctx.span.set_attribute("error.type", kind)
            ctx.span.set_status(Status(StatusCode.ERROR, kind))
            ctx.span.end()

        config.on_request_start.append(start)
        config.on_request_end.append(end)
        config.on_request_exception.append(failed)
        config.freeze()
        return config


def _finish_server_span(span: trace.Span, request: web.Request, status: int) -> None:
    info = request.get(INFO)
    span.set_attribute("http.response.status_code", status)
    if info is not None:
        span.set_attribute("gateway.request_id", info.request_id)
        if info.code:
            span.set_attribute("gateway.code", info.code)
        if info.upstream is not None:
            route = f"/{info.upstream}/{{path}}"
            span.set_attribute("gateway.upstream", info.upstream)
            span.set_attribute("http.route", route)
            span.update_name(f"{request.method} {route}")
    if status >= 500:
        span.set_attribute(
            "error.type", info.code if info is not None and info.code else str(status)
        )
        span.set_status(Status(StatusCode.ERROR))
