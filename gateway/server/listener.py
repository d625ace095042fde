"""The caller-facing listener: a bounded number of connections, a deadline for
each request head, handlers cancelled when their caller leaves.

- ``server.max_connections``: a connection over the bound is answered at once
  with a 503 ``upstream_unavailable`` problem (``Retry-After: 1``) and closed,
  before anything is read from it; counted in
  ``gateway_load_shed_total{reason="connections"}``. aiohttp's ``TCPSite`` has
  no such bound, so :class:`BoundedSite` serves the runner's protocol factory
  through its own, which counts the open connections first.
- ``server.head_timeout``: aiohttp's keep-alive timer closes a connection that
  has not delivered a complete request head this long after it opened or after
  its last reply. The timer is not pushed back by partial data, so it is a
  deadline for slowly trickled heads too (slowloris), not only for idle ones.
- Handler cancellation: a caller that disconnects cancels its handler, which
  cancels the upstream call and releases its connection (status 499).
- Requests aiohttp's parser refuses are answered as problems by
  :class:`~gateway.server.malformed.ProblemRequestHandler`, the handler each
  accepted connection gets here (``web.Server`` would make a plain one).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from gateway.config_server import ServerConfig
from gateway.core.problem import PROBLEM_CONTENT_TYPE, Problem
from gateway.server.malformed import OnMalformed, ProblemRequestHandler


def runner_options(server: ServerConfig) -> dict[str, Any]:
    """Keyword arguments of ``web.AppRunner`` (passed on to each connection's handler)."""
    return {"handler_cancellation": True, "keepalive_timeout": server.head_timeout}


def _refusal(problem: Problem) -> bytes:
    body = problem.to_json(instance="/", request_id=uuid.uuid4().hex)
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class _Refuse(asyncio.Protocol):
    def __init__(self, problem: Problem) -> None:
        self._problem = problem

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's TCPTransport implements the
        # interface without subclassing asyncio.WriteTransport (an assert here
        # raised in the protocol, and the loop dropped the connection unanswered).
        writer = cast(asyncio.WriteTransport, transport)
        writer.write(_refusal(self._problem))
        writer.close()


class BoundedSite(web.BaseSite):
    """A TCP site that serves at most ``max_connections`` connections at once."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        max_connections: int,
        on_refused: Callable[[], None],
        on_malformed: OnMalformed,
        problem_base: str,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner)
        self._reuse_port = reuse_port  # server.workers > 1: the workers share the port
        self._host = host
        self._port = port
        self._max = max_connections
        self._on_refused = on_refused
        self._on_malformed = on_malformed
        self._problem_base = problem_base
        self._problem = Problem(
            code="upstream_unavailable",
            detail=f"the gateway has {max_connections} caller connections open, its limit",
            retry_after=1.0,
        )

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.Protocol:
            if len(server.connections) >= self._max:
                self._on_refused()
                return _Refuse(self._problem)
            # What ``server()`` does, with the handler class that answers problems.
            return ProblemRequestHandler(
                server,
                loop=loop,
                on_malformed=self._on_malformed,
                problem_base=self._problem_base,
                **server._kwargs,
            )

        self._server = await loop.create_server(
            protocol,
            self._host,
            self._port,
            reuse_address=True,
            reuse_port=self._reuse_port or None,
        )
