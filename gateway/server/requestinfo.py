"""Per-request facts gathered along the way, for the access log, metrics and headers."""

from __future__ import annotations

from contextvars import Token
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from structlog.contextvars import bind_contextvars

from gateway.core.messages import Headers


@dataclass
class RequestInfo:
    request_id: str
    user: str | None = None
    upstream: str | None = None
    upstream_status: int | None = None
    upstream_seconds: float = 0.0
    ratelimit_delay: float = 0.0
    ratelimit_headers: Headers = ()
    streaming: bool = False  # response headers were sent: no problem body possible
    sent_status: int | None = None  # the status already sent when streaming
    attempts: int = 0  # exchanges sent upstream for this call (0: it never left)
    code: str = ""  # the outcome's problem code ("ok"), set when the call ends (for the span)
    buffered: int = 0  # request bytes charged to the gateway's byte budget
    bound: dict[str, Token[Any]] = field(default_factory=dict)  # reset when the request ends

    def bind(self, **values: Any) -> None:
        """Bind ``values`` in structlog's context: on every line logged while serving
        the request, the problem middleware's own lines included (it resets them last)."""
        self.bound.update(bind_contextvars(**values))


INFO = web.RequestKey("gateway_info", RequestInfo)
