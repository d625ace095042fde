"""Compress replies the way the real upstreams' front servers do.

Real API hosts sit behind nginx-style front servers that gzip JSON and text
replies whenever the client accepts gzip (``gzip on; gzip_types ...;
gzip_vary on``). Every common client accepts it by default (requests, httpx,
aiohttp, browsers, ``curl --compressed``), so a stand-in that never compressed
would hide everything a compressed reply breaks. This middleware gives all
four stand-ins that behaviour, modelled on nginx's gzip module:

- only ``gzip`` (or ``x-gzip``) with a q-value above 0 counts as acceptance
  (RFC 9110 §12.5.3); ``*`` and ``deflate`` alone do not, as in nginx;
- only text, JSON and form replies at least :data:`MIN_LENGTH` bytes long;
- never a reply that already has a ``Content-Encoding``, a 204/304, or one a
  handler streamed itself (already sent when the middleware sees it);
- ``Vary: Accept-Encoding`` on every reply it could have compressed.

Written for the stand-ins only: it shares nothing with the gateway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

MIN_LENGTH = 20  # nginx's gzip_min_length default
COMPRESSIBLE = (
    "text/",
    "application/json",
    "application/problem+json",
    "application/x-www-form-urlencoded",
    "application/javascript",
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True when the ``Accept-Encoding`` value lists gzip with a non-zero q-value."""
    for item in (accept_encoding or "").split(","):
        name, *params = (part.strip() for part in item.split(";"))
        if name.lower() not in ("gzip", "x-gzip"):
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


def _compressible(response: web.StreamResponse) -> bool:
    if not isinstance(response, web.Response) or response.prepared:
        return False
    if response.status in (204, 304) or "Content-Encoding" in response.headers:
        return False
    body = response.body
    if not isinstance(body, bytes | bytearray) or len(body) < MIN_LENGTH:
        return False
    return response.content_type.startswith(COMPRESSIBLE)


@web.middleware
async def gzip_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if _compressible(response):
        response.headers.add("Vary", "Accept-Encoding")
        if accepts_gzip(request.headers.get("Accept-Encoding")):
            response.enable_compression(web.ContentCoding.gzip)
    return response
