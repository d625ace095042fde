"""Per-request facts gathered along the way, for the access log, metrics and headers."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.core.messages import Headers


@dataclass(slots=True)
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


INFO = web.RequestKey("gateway_info", RequestInfo)
