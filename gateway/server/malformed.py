"""Requests aiohttp's parser refuses, answered as problems, not plain text.

A request line, header or framing aiohttp cannot parse (a bad method or
version, a malformed or oversized header, a bad ``Content-Length`` or
``Transfer-Encoding``, bytes that are not HTTP) never reaches the app or its
middlewares: aiohttp's ``RequestHandler.handle_error`` answers it, by default
as ``text/plain`` quoting the parser's message, which quotes the raw input.
:class:`ProblemRequestHandler` answers a 4xx with an ``invalid_request``
problem (``payload_too_large`` for a 413) instead: ``instance`` ``/`` (the
path is not known to be safe), a fresh request id, no upstream, and a
``detail`` naming only the kind of error. aiohttp's own logging of the error
is kept (``gateway.logs.MalformedRequestFilter`` turns it into one WARNING
line); 5xx statuses take aiohttp's path unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_request import BaseRequest

from gateway.core.problem import PROBLEM_CONTENT_TYPE, Problem

# Called with (status, code) for each refusal, so that it can be counted.
OnMalformed = Callable[[int, str], None]


def malformed_problem(status: int, exc: BaseException | None) -> Problem:
    """The problem for a request aiohttp could not parse; never quotes the input."""
    kind = type(exc).__name__ if exc is not None else "unparsable request"
    return Problem(
        code="payload_too_large" if status == 413 else "invalid_request",
        status=status,
        detail=f"the request is not valid HTTP/1.1 ({kind}); it was not forwarded",
    )


class ProblemRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, whose parser refusals are problem+json."""

    __slots__ = ("_on_malformed", "_problem_base")

    def __init__(
        self, manager: web.Server, *, on_malformed: OnMalformed, problem_base: str, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self._on_malformed = on_malformed
        self._problem_base = problem_base

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's version logs the error and refuses to answer once bytes
        # were sent; its plain-text reply is then dropped for a problem.
        fallback = super().handle_error(request, status, exc, message)
        if not 400 <= status < 500:
            return fallback
        problem = malformed_problem(status, exc)
        request_id = uuid.uuid4().hex
        self._on_malformed(status, problem.code)
        response = web.Response(
            status=status,
            body=problem.to_json(instance="/", request_id=request_id, base=self._problem_base),
            content_type=PROBLEM_CONTENT_TYPE,
            headers={"X-Request-Id": request_id},
        )
        response.force_close()
        return response
