"""Writing the caller's reply: a local answer, a body read whole, or a stream
passed on chunk by chunk (idle-bounded), with the upstream's forwardable headers."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from gateway.core.headers import forwardable_reply_headers
from gateway.core.messages import Headers, UpstreamReply
from gateway.server.bodies import STREAM_CHUNK
from gateway.server.client import UpstreamClient
from gateway.server.requestinfo import INFO
from gateway.upstreams.base import LocalAnswer


def _reply_headers(reply: UpstreamReply, extra: Headers) -> list[tuple[str, str]]:
    return [*forwardable_reply_headers(reply.headers), *extra]


def local_response(answer: LocalAnswer) -> web.Response:
    resp = web.Response(status=answer.status, body=answer.body, content_type=answer.content_type)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def buffered_response(reply: UpstreamReply, extra: Headers, body: bytes) -> web.Response:
    resp = web.Response(status=reply.status, body=body)
    resp.headers.clear()
    for key, value in _reply_headers(reply, extra):
        if key.lower() != "content-length":
            resp.headers.add(key, value)
    return resp


async def stream_response(
    request: web.Request,
    upstream_resp: aiohttp.ClientResponse,
    reply: UpstreamReply,
    extra: Headers,
    prefix: bytes = b"",
    *,
    client: UpstreamClient,
) -> web.StreamResponse:
    resp = web.StreamResponse(status=reply.status)
    for key, value in _reply_headers(reply, extra):
        if key.lower() == "content-length":
            resp.content_length = int(value)
        else:
            resp.headers.add(key, value)
    request[INFO].streaming = True
    request[INFO].sent_status = reply.status
    try:
        await resp.prepare(request)
        if prefix:
            await resp.write(prefix)
        async for chunk in client.chunks(upstream_resp, STREAM_CHUNK):  # idle-bounded
            await resp.write(chunk)
        await resp.write_eof()
    finally:
        upstream_resp.release()
    return resp
