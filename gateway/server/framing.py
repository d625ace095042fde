"""What the gateway accepts of a request's framing, refused as problems, not plain text.

- ``Expect``: only ``100-continue`` (RFC 9110 §10.1.1). aiohttp answers any
  other expectation itself, before any middleware runs, with a plain-text 417,
  and a non-UTF-8 byte in the value made that a plain-text 500. Every route
  therefore registers :func:`expect_handler`, which sends ``100 Continue`` when
  asked and otherwise lets the request reach :func:`check_framing`, which
  refuses it as a 417 problem, logged and counted like any other.
- ``Transfer-Encoding``: only ``chunked`` (RFC 9112 §6.1). aiohttp accepts
  ``gzip, chunked`` and would hand the gzip bytes on as if they were the body;
  any other coding is a 501 problem.
"""

from __future__ import annotations

from aiohttp import web

from gateway.errors import CodingNotImplemented, ExpectationFailed

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _expects_continue(request: web.Request) -> bool:
    return request.headers.get("Expect", "").strip().lower() == "100-continue"


async def expect_handler(request: web.Request) -> None:
    """aiohttp's per-route hook for ``Expect``, run before the middlewares."""
    if _expects_continue(request) and request.version >= (1, 1):
        await request.writer.write(CONTINUE)


def check_framing(request: web.Request) -> None:
    """417 for an ``Expect`` other than ``100-continue``, 501 for a transfer coding
    other than ``chunked``."""
    headers = request.headers
    if "Expect" in headers and not _expects_continue(request):
        # The value is not echoed: it may hold any byte.
        raise ExpectationFailed("the only expectation the gateway supports is 100-continue")
    if "Transfer-Encoding" not in headers:  # most requests: nothing more to look at
        return
    codings = [
        coding.strip().lower()
        for value in request.headers.getall("Transfer-Encoding", ())
        for coding in value.split(",")
        if coding.strip()
    ]
    if codings and codings != ["chunked"]:
        raise CodingNotImplemented(
            "the only transfer coding the gateway accepts is chunked "
            "(send a compressed body with Content-Encoding)"
        )
