"""Fault routes and request recording shared by all four stand-ins.

:func:`add_fault_routes` mounts, under a prefix (``""`` or ``"/v1"``), routes
that never check authentication and misbehave on purpose:

- ``ANY {prefix}/__fault/sleep?seconds=N``   sleep, then 200 ``{"slept": N}``
- ``ANY {prefix}/__fault/html500``           500 text/html with a stack trace
- ``ANY {prefix}/__fault/text/{status}``     text/plain ``upstream says <status>``
- ``ANY {prefix}/__fault/truncated``         500 application/json ``{"status": "err``
- ``ANY {prefix}/__fault/empty/{status}``    that status with an empty body
- ``ANY {prefix}/__fault/echo``              200 JSON echo of the request
- ``POST /__standin/outage`` (the fault switch, in ``recorder.py``): every
  recorded request then fails, ``{"status": 503}`` with that status (and
  ``"retry_after": S``, a ``Retry-After`` header),
  ``{"mode": "close"}`` by dropping the connection; ``{}`` (or a reset) heals
- ``ANY {prefix}/__fault/big``               200, 5 MB of ``x`` streamed in chunks
  (``?size=N`` changes the size, ``?declare_length=1`` sends Content-Length)
- ``ANY {prefix}/__fault/drop``              read the request, then close the connection
  without a reply (a server that dies mid-request: was it sent twice?)
- ``ANY {prefix}/__fault/trickle?chunks=N&every=S&size=B``  200, N chunks of B bytes,
  one every S seconds: a slow but steady download
- ``ANY {prefix}/__fault/gzipbomb/{status}``  that status, ``Content-Encoding: gzip``
  whatever the client accepts: about 1 MB on the wire that inflates to
  ``{"message": "<spaces>"}``, ``?size=N`` bytes long (default 1 GiB);
  ``?cut=N`` leaves out its last N bytes (a broken gzip stream)
- ``ANY {prefix}/__fault/location/{status}?path=/p``  that status with ``Location`` and
  ``Content-Location`` the absolute URL of ``{prefix}/p`` on this server (a redirect,
  or a 201 naming what it made, as any HTTP API may answer)

:func:`recording_middleware` records every request except the inspection
routes (``/__standin/...``) in the app's :class:`Recorder`; handlers reach the
record through :func:`seen_of` and fill in ``auth_ok``, ``principal``...
"""

from __future__ import annotations

import asyncio
import base64
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.standins.recorder import RECORDER, Seen

BIG_SIZE = 5 * 1024 * 1024
BOMB_SIZE = 1024 * 1024 * 1024
_bombs: dict[int, bytes] = {}
CHUNK = 64 * 1024

HTML_500 = """<!DOCTYPE html>
<html><head><title>500 Internal Server Error</title></head>
<body><h1>Server Error (500)</h1>
<pre>Traceback (most recent call last):
  File "/srv/app/handlers.py", line 212, in dispatch
    return await handler(request)
  File "/srv/app/models.py", line 87, in load
    row = await self.db.fetch_one(query)
  File "/srv/app/db.py", line 41, in fetch_one
    raise ConnectionError("server closed the connection unexpectedly")
ConnectionError: server closed the connection unexpectedly
</pre></body></html>
"""

_SEEN = web.RequestKey("standin_seen", Seen)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def recording_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every non-inspection request; stamp ``answered`` when done."""
    if request.path.startswith("/__standin/"):
        return await handler(request)
    body = await request.read()
    recorder = request.app[RECORDER]
    seen = recorder.record(request, body)
    request[_SEEN] = seen
    try:
        if recorder.outage is not None:
            return _outage_reply(request, recorder.outage)
        return await handler(request)
    finally:
        seen.answered = time.time()


def _outage_reply(request: web.Request, outage: dict[str, Any]) -> web.Response:
    """The fault switch is on (``POST /__standin/outage``): fail this request."""
    if outage.get("mode") == "close":
        if request.transport is not None:
            request.transport.close()
        raise ConnectionResetError("stand-in outage: connection dropped")
    status = int(outage.get("status", 503))
    resp = web.Response(status=status, text=f"outage: {status}", content_type="text/plain")
    if "retry_after" in outage:
        resp.headers["Retry-After"] = str(outage["retry_after"])
    return resp


def seen_of(request: web.Request) -> Seen:
    """The record of this request (a detached one if it was not recorded)."""
    seen = request.get(_SEEN)
    if isinstance(seen, Seen):
        return seen
    return Seen(request.method, request.path, request.query_string, {}, "", time.time())


def html_500() -> web.Response:
    return web.Response(status=500, text=HTML_500, content_type="text/html")


def _status(request: web.Request) -> int:
    try:
        status = int(request.match_info["status"])
    except ValueError:
        raise web.HTTPBadRequest(text="status must be an integer") from None
    if not 200 <= status <= 599:
        raise web.HTTPBadRequest(text="status must be between 200 and 599")
    return status


async def _sleep(request: web.Request) -> web.Response:
    raw = request.query.get("seconds", "0")
    try:
        seconds: float = int(raw)
    except ValueError:
        try:
            seconds = float(raw)
        except ValueError:
            raise web.HTTPBadRequest(text="seconds must be a number") from None
    await asyncio.sleep(max(0.0, seconds))
    return web.json_response({"slept": seconds})


async def _html500(request: web.Request) -> web.Response:
    return html_500()


async def _text(request: web.Request) -> web.Response:
    status = _status(request)
    return web.Response(status=status, text=f"upstream says {status}", content_type="text/plain")


async def _truncated(request: web.Request) -> web.Response:
    return web.Response(status=500, body=b'{"status": "err', content_type="application/json")


async def _empty(request: web.Request) -> web.Response:
    return web.Response(status=_status(request))


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "raw_path": request.raw_path,
            "query_string": request.rel_url.raw_query_string,
            "headers": dict(request.headers),
            "header_list": [[k, v] for k, v in request.headers.items()],
            "body": body.decode("utf-8", "replace"),
            "body_base64": base64.b64encode(body).decode("ascii"),
        }
    )


async def _big(request: web.Request) -> web.StreamResponse:
    try:
        size = int(request.query.get("size", str(BIG_SIZE)))
    except ValueError:
        raise web.HTTPBadRequest(text="size must be an integer") from None
    response = web.StreamResponse(status=200)
    response.content_type = "application/octet-stream"
    if request.query.get("declare_length") in ("1", "true"):
        response.content_length = size
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    chunk = b"x" * CHUNK
    left = size
    while left > 0:
        part = chunk if left >= CHUNK else chunk[:left]
        await response.write(part)
        left -= len(part)
    await response.write_eof()
    return response


async def _drop(request: web.Request) -> web.StreamResponse:
    await request.read()
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)  # never written: the connection is gone


def _number(request: web.Request, name: str, default: str) -> float:
    try:
        return float(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a number") from None


async def _trickle(request: web.Request) -> web.StreamResponse:
    chunks = int(_number(request, "chunks", "10"))
    every = _number(request, "every", "0.1")
    size = int(_number(request, "size", "1024"))
    response = web.StreamResponse(status=200)
    response.content_type = "application/octet-stream"
    response.content_length = chunks * size
    await response.prepare(request)
    for _ in range(chunks):
        await asyncio.sleep(every)
        await response.write(b"t" * size)
    await response.write_eof()
    return response


def _bomb_body(size: int) -> bytes:
    """gzip of a JSON object ``size`` bytes long, made in chunks (never held inflated)."""
    if size not in _bombs:
        head, tail = b'{"message": "', b'"}'
        packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        parts = [packer.compress(head)]
        left = max(0, size - len(head) - len(tail))
        block = b" " * CHUNK * 16
        while left > 0:
            part = block if left >= len(block) else block[:left]
            parts.append(packer.compress(part))
            left -= len(part)
        parts += [packer.compress(tail), packer.flush()]
        _bombs.clear()  # keep one size only
        _bombs[size] = b"".join(parts)
    return _bombs[size]


async def _gzipbomb(request: web.Request) -> web.Response:
    try:
        size = int(request.query.get("size", str(BOMB_SIZE)))
    except ValueError:
        raise web.HTTPBadRequest(text="size must be an integer") from None
    body = await asyncio.get_running_loop().run_in_executor(None, _bomb_body, size)
    cut = request.query.get("cut", "0")
    if not cut.isdigit():
        raise web.HTTPBadRequest(text="cut must be a non-negative integer")
    body = body[: len(body) - int(cut)]
    return web.Response(
        status=_status(request),
        body=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )


def _location(prefix: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        path = request.query.get("path", "/")
        if not path.startswith("/"):
            raise web.HTTPBadRequest(text="path must start with /")
        url = f"{request.scheme}://{request.host}{prefix}{path}"
        headers = {"Location": url, "Content-Location": url}
        return web.json_response({"location": url}, status=_status(request), headers=headers)

    return handler


def add_fault_routes(app: web.Application, prefix: str) -> None:
    """Mount the ``/__fault/...`` routes under ``prefix`` (no auth checks)."""
    base = f"{prefix.rstrip('/')}/__fault"
    app.router.add_route("*", f"{base}/sleep", _sleep)
    app.router.add_route("*", f"{base}/html500", _html500)
    app.router.add_route("*", f"{base}/text/{{status}}", _text)
    app.router.add_route("*", f"{base}/truncated", _truncated)
    app.router.add_route("*", f"{base}/empty/{{status}}", _empty)
    app.router.add_route("*", f"{base}/echo", _echo)
    app.router.add_route("*", f"{base}/big", _big)
    app.router.add_route("*", f"{base}/drop", _drop)
    app.router.add_route("*", f"{base}/trickle", _trickle)
    app.router.add_route("*", f"{base}/gzipbomb/{{status}}", _gzipbomb)
    app.router.add_route("*", f"{base}/location/{{status}}", _location(prefix.rstrip("/")))
