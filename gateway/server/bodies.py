"""The caller's request body: read in chunks under ``server.body_timeout`` and the
upstream's ``max_body_bytes``, streamed on or buffered whole (when the signature
covers it) against the gateway's byte budget (``server.max_buffered_bytes``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.errors import InvalidRequest, Overloaded, PayloadTooLarge, RequestTimeout
from gateway.server.keys import METRICS, STATE, config_of
from gateway.server.requestinfo import INFO

STREAM_CHUNK = 64 * 1024


def caller_body(
    request: web.Request, limit: int, name: str, timeout: float
) -> AsyncIterator[bytes]:
    """The caller's body in chunks, at most ``limit`` bytes, all of it within
    ``timeout`` (``server.body_timeout``) of the first read."""

    async def gen() -> AsyncIterator[bytes]:
        size = 0
        chunks = request.content.iter_chunked(STREAM_CHUNK)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive within {timeout:g}s", upstream=name
                ) from None
            except (OSError, asyncio.IncompleteReadError, HttpProcessingError) as exc:
                raise _broken(name) from exc
            size += len(chunk)
            if size > limit:
                raise _too_large(limit, name)
            yield chunk

    return gen()


async def read_body(request: web.Request, limit: int, name: str) -> bytes:
    """The whole body, charged to the gateway's byte budget (``server.max_buffered_bytes``)
    as it arrives; ``RequestInfo.buffered`` holds the charge, given back when the call ends."""
    state = request.app[STATE]
    info = request[INFO]
    budget = state.budget

    def charge(size: int) -> None:
        if not budget.take(size):
            request.app[METRICS].load_shed.labels("buffered_bytes").inc()
            raise Overloaded(
                f"the gateway holds {budget.limit} bytes of request bodies, its limit; "
                "try again shortly",
                reason="buffered_bytes",
            )
        info.buffered += size

    declared = request.content_length
    if declared is not None:
        charge(declared)  # all of it up front: a refusal costs no reading
    whole = _arrived_whole(request, limit, name)
    if whole is not None:  # the body came with the head: no reading loop, no timer
        if declared is None:
            charge(len(whole))
        return whole
    chunks = []
    size = 0
    timeout = config_of(request.app).server.body_timeout
    async for chunk in caller_body(request, limit, name, timeout):
        size += len(chunk)
        if declared is None or size > declared:
            charge(len(chunk))
        chunks.append(chunk)
    body = b"".join(chunks)  # the one copy; the chunks go with this frame
    return body


def _arrived_whole(request: web.Request, limit: int, name: str) -> bytes | None:
    """The whole body when all of it is already buffered (a small body usually comes
    in the same packets as the head), else None: it is read chunk by chunk."""
    content = request.content
    if not content.is_eof():
        return None
    try:
        body = content.read_nowait(-1)  # raises the stream's error, as a read would
    except (OSError, asyncio.IncompleteReadError, HttpProcessingError) as exc:
        raise _broken(name) from exc
    if len(body) > limit:
        raise _too_large(limit, name)
    return body


def _broken(name: str) -> InvalidRequest:
    return InvalidRequest(
        "the request body could not be read (the caller broke it off)", upstream=name
    )


def _too_large(limit: int, name: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is over {limit} bytes", upstream=name)
