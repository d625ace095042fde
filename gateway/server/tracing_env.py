"""Is tracing on? Decided from the standard ``OTEL_*`` variables, without importing OpenTelemetry.

Tracing is **off** unless an OTLP endpoint is configured:
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``. It
stays off when ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``.
Only OTLP over HTTP (``http/protobuf``) is shipped; any other
``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`` or ``OTEL_TRACES_EXPORTER`` is a
configuration error naming the variable. When off, the gateway never imports
OpenTelemetry and installs no hook: no middleware, no client trace callbacks.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.server.tracing import Tracing

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
HEADER_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")


def tracing_enabled(env: Mapping[str, str]) -> bool:
    """True when the environment asks for spans exported over OTLP/HTTP."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    if not any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES):
        return False
    if exporter not in ("", "otlp"):
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={exporter!r} is not supported: the gateway exports "
            "traces over OTLP/HTTP only (use 'otlp' or 'none')"
        )
    for name in PROTOCOL_VARIABLES:
        protocol = env.get(name, "").strip()
        if protocol and protocol != "http/protobuf":
            raise ConfigError(
                f"{name}={protocol!r} is not supported: the gateway exports traces over "
                "OTLP/HTTP only ('http/protobuf')"
            )
    return True


def exporter_header_values(env: Mapping[str, str]) -> list[str]:
    """The values of ``OTEL_EXPORTER_OTLP[_TRACES]_HEADERS`` (often an API key): secrets."""
    found = []
    for name in HEADER_VARIABLES:
        for pair in env.get(name, "").split(","):
            _, sep, value = pair.partition("=")
            if sep and value.strip():
                found += [value.strip(), unquote(value.strip())]
    return found


def load_tracing(env: Mapping[str, str]) -> Tracing | None:
    """The exporter the environment configures, or None (and nothing imported) when off."""
    if not tracing_enabled(env):
        return None
    from gateway.server.tracing import Tracing

    return Tracing.from_env()


def wait_span(tracing: Tracing | None, upstream: str, delay: float) -> AbstractContextManager[Any]:
    """The rate-limit wait as a span of its own; nothing when tracing is off."""
    if tracing is None:
        return nullcontext()
    return tracing.span(
        "gateway.ratelimit.wait", {"gateway.upstream": upstream, "gateway.delay_s": delay}
    )
