"""HTTP client per upstream: explicit pool and timeouts, aiohttp errors translated here.

This is the one place where aiohttp client exceptions become gateway errors
(``raise ... from exc``). aiohttp never decompresses: a body read for inspection
is decoded here, within its bound (:mod:`gateway.core.content_coding`), and
successful bodies go back to the caller byte for byte, still encoded.

Timeouts (``upstreams.<name>.timeouts``), each with its own failure reason in
``gateway_upstream_failures_total``:

- ``pool``: waiting for a free connection when all ``pool_size`` are busy
  (503 ``upstream_unavailable`` "connection pool exhausted", ``Retry-After``).
  The wait is the client's own (:class:`PoolGate`), not aiohttp's queue: a
  call holds one of ``pool_size`` slots from its send until its connection is
  released (body read, stream ended, or closed), so aiohttp's own pool, of the
  same size, never queues. (Before: trace hooks on aiohttp's queue, which cost
  every call aiohttp's tracing path, ~20 µs, to catch the rare wait.)
- ``connect``: opening a new connection (504 ``upstream_timeout``);
- ``head``: from the start of the call to the reply's status line and
  headers, the pool wait, connect and request body included (504);
- ``idle``: the longest silence between two pieces of the reply body. A body
  has no overall bound: a healthy long download is never cut.

No request is ever sent twice by the client (:func:`never_resend`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence

import aiohttp
from yarl import URL

from gateway.config import UpstreamConfig
from gateway.core.content_coding import decode_bounded
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.errors import GatewayError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.metrics import Metrics

BodySource = Callable[[], AsyncIterator[bytes]]


class SentOnce(aiohttp.ClientConnectionError):
    """The upstream closed the connection after the request went out: not resent."""


async def never_resend(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """Client middleware: aiohttp silently sends GET, PUT, DELETE... a second time
    when the upstream closes the connection after reading the request
    (``ClientSession._request`` retries ``ServerDisconnectedError`` and
    ``ClientOSError`` for idempotent methods, and has no public switch). That
    resend would reuse the first one's OAuth nonce, bypass the quota and the
    metrics. Turning the error into one the loop does not retry ends it: a
    resend, if ever wanted, is the gateway's own decision. Connection failures
    (nothing sent) pass unchanged; aiohttp does not retry those either.
    """
    try:
        return await handler(request)
    except aiohttp.ClientConnectorError:
        raise
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        raise SentOnce(str(exc)) from exc


class PoolGate:
    """``pool_size`` slots per pool: a call takes one before it is sent, and gives
    it back when its connection goes back to aiohttp's pool or is closed
    (``Connection.add_callback``), or at once when it fails before a reply. A slot
    given back goes to the longest waiter first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_use(self) -> int:
        return self.size - self.free

    def try_take(self) -> bool:
        """A slot at once, if one is free and nobody waits for one."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        """Wait for a slot (bound the wait with a timeout: it cancels)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over just as the wait ended: pass it on
            elif waiter in self._waiters:  # (a release may have skipped it already)
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes to the waiter as it is
                return
        self.free += 1

    def hold_until_released(self, resp: aiohttp.ClientResponse) -> None:
        conn = resp.connection
        if conn is None:  # the whole reply was read with its head: already released
            self.release()
        else:
            conn.add_callback(self.release)


def make_session(
    cfg: UpstreamConfig, trace_configs: Sequence[aiohttp.TraceConfig] = ()
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=cfg.pool_size,
        limit_per_host=cfg.pool_size,
        ttl_dns_cache=300,
        keepalive_timeout=30,
    )
    # The head and pool bounds are the call's own (UpstreamClient.open), the idle
    # bound is per read (UpstreamClient.read): aiohttp's `total` would cut a long
    # healthy body, and its `sock_read` would also bound the wait for the head.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=cfg.connect_timeout)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),  # upstream cookies are kept by the auth, per tenant
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        raise_for_status=False,
        middlewares=(never_resend,),
        trace_configs=list(trace_configs),  # tracing's client spans, when on
    )


def reply_head(resp: aiohttp.ClientResponse) -> UpstreamReply:
    return UpstreamReply(status=resp.status, headers=tuple(resp.headers.items()))


class UpstreamClient:
    def __init__(
        self,
        cfg: UpstreamConfig,
        session: aiohttp.ClientSession,
        metrics: Metrics,
        gate: PoolGate | None = None,
    ):
        self.cfg = cfg
        self.session = session
        self.gate = PoolGate(cfg.pool_size) if gate is None else gate  # shared with the session
        self.metrics = metrics
        self._duration = metrics.upstream_duration.labels(cfg.name)  # resolved once

    async def open(
        self, request: OutboundRequest, body: BodySource | None = None
    ) -> aiohttp.ClientResponse:
        """Send a request and return the response with its body unread.

        The head deadline (``timeouts.head``) runs from here: the wait for a pool
        slot (at most ``timeouts.pool`` of it) and the send count against it."""
        data: object = request.body
        if request.streamed_body and body is not None:
            data = body()
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + self.cfg.head_timeout
        gate = self.gate
        try:
            if not gate.try_take():
                await self._wait_for_slot(deadline)
            try:
                async with asyncio.timeout_at(deadline):
                    resp = await self.session.request(
                        request.method,
                        URL(request.url, encoded=True),
                        headers=list(request.headers),
                        data=data,
                        allow_redirects=False,
                    )
            except BaseException as exc:
                gate.release()  # the send failed: its slot goes back at once
                if isinstance(exc, GatewayError) or not isinstance(exc, Exception):
                    raise
                # The caller's streamed body failed (over the limit, or broken off):
                # aiohttp wraps the generator's error; that error is the real answer.
                cause = exc.__cause__ or exc.__context__
                if not isinstance(exc, TimeoutError) and isinstance(cause, GatewayError):
                    raise cause from None
                raise self._translate(exc) from exc
        finally:
            self._duration.observe(time.perf_counter() - started)
        gate.hold_until_released(resp)
        return resp

    async def _wait_for_slot(self, deadline: float) -> None:
        """All ``pool_size`` connections are busy: wait for one, ``timeouts.pool`` at
        most (and no later than the head deadline), else a 503."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + self.cfg.pool_timeout)):
                await self.gate.take()
        except TimeoutError as exc:
            if loop.time() >= deadline:  # the head bound came first
                raise self._translate(exc) from exc
            raise self._failed(
                "pool_exhausted",
                UpstreamUnavailable(
                    f"{self.cfg.name}: connection pool exhausted (all "
                    f"{self.cfg.pool_size} connections busy for "
                    f"{self.cfg.pool_timeout:g}s)",
                    upstream=self.cfg.name,
                    retry_after=1.0,
                ),
            ) from exc

    def _failed(self, reason: str, error: GatewayError) -> GatewayError:
        self.metrics.upstream_failures.labels(self.cfg.name, reason).inc()
        return error

    def _translate(self, exc: Exception) -> Exception:
        """The one place where aiohttp client errors become gateway errors."""
        name = self.cfg.name
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return self._failed(
                "connect_timeout",
                UpstreamTimeout(
                    f"{name} did not accept a connection within {self.cfg.connect_timeout:g}s",
                    upstream=name,
                ),
            )
        if isinstance(exc, TimeoutError):
            return self._failed(
                "head_timeout",
                UpstreamTimeout(
                    f"{name} did not answer within {self.cfg.head_timeout:g}s", upstream=name
                ),
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            return self._failed(
                "connect_failed", UpstreamUnavailable(f"cannot connect to {name}", upstream=name)
            )
        if isinstance(exc, SentOnce | aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
            return self._failed(
                "disconnected",
                UpstreamUnavailable(f"{name} closed the connection", upstream=name),
            )
        if isinstance(exc, aiohttp.ClientError):
            return self._failed(
                "bad_reply",
                UpstreamError(f"{name} sent a reply the gateway cannot read", upstream=name),
            )
        return exc

    async def read(self, resp: aiohttp.ClientResponse, size: int) -> bytes:
        """Up to ``size`` bytes of the body (b"" at its end), within ``timeouts.idle``.

        What has already arrived is taken at once, with no timer: the idle bound is
        a bound on waiting (a small reply is usually whole by the time its head is
        read, and its end known: two timers per call saved)."""
        content = resp.content
        data = content.read_nowait(size)  # raises the stream's error, as read() would
        if data or content.at_eof():
            return data
        try:
            async with asyncio.timeout(self.cfg.idle_timeout):
                return await content.read(size)
        except TimeoutError:
            self.metrics.upstream_failures.labels(self.cfg.name, "idle_timeout").inc()
            raise

    async def chunks(self, resp: aiohttp.ClientResponse, size: int) -> AsyncIterator[bytes]:
        """The rest of the body; a silence over ``timeouts.idle`` raises TimeoutError."""
        while chunk := await self.read(resp, size):
            yield chunk

    async def read_prefix(
        self, resp: aiohttp.ClientResponse, limit: int
    ) -> tuple[UpstreamReply, bool]:
        """Read at most ``limit`` bytes of the body.

        Returns the reply (``truncated`` set when more follows; ``body`` then
        holds everything read so far, a little over ``limit``) and whether the
        body is complete on the wire. A complete body releases the connection;
        an incomplete one leaves ``resp`` open so the rest can be streamed on.
        A content-coded body is decoded into ``body`` (at most ``limit`` bytes,
        ``truncated`` when the content is longer) and kept as it came in
        ``encoded_body``; one that cannot be decoded is a 502 ``upstream_error``.
        """
        head = reply_head(resp)
        chunks: list[bytes] = []
        size = 0
        complete = True
        try:
            while True:
                chunk = await self.read(resp, 64 * 1024)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    complete = False
                    break
        except TimeoutError as exc:
            resp.close()
            raise UpstreamTimeout(
                f"{self.cfg.name} sent no reply data for {self.cfg.idle_timeout:g}s",
                upstream=self.cfg.name,
            ) from exc
        except asyncio.CancelledError:
            resp.close()  # the caller left mid-read: the connection (and its pool slot) goes
            raise
        except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
            resp.close()
            raise self._failed(
                "disconnected",
                UpstreamError(f"{self.cfg.name} broke off its reply", upstream=self.cfg.name),
            ) from exc
        if complete:
            resp.release()
        try:
            return self._decoded(head, b"".join(chunks), complete, limit), complete
        except UpstreamError:
            resp.close()
            raise

    def _decoded(
        self, head: UpstreamReply, raw: bytes, complete: bool, limit: int
    ) -> UpstreamReply:
        """The reply with its body decoded for inspection, at most ``limit`` bytes of it."""
        decoded = decode_bounded(raw, head.header("Content-Encoding"), limit, whole=complete)
        if decoded.error is not None:
            raise UpstreamError(
                f"{self.cfg.name} answered HTTP {head.status} with a body the gateway"
                f" cannot decode: {decoded.error}",
                upstream=self.cfg.name,
            )
        return UpstreamReply(
            status=head.status,
            headers=head.headers,
            body=decoded.body,
            truncated=not decoded.complete,
            encoded_body=None if decoded.body is raw else raw,
        )

    async def read_bounded(self, resp: aiohttp.ClientResponse, limit: int) -> UpstreamReply:
        """Read at most ``limit`` bytes and close: for replies that are never passed on."""
        reply, complete = await self.read_prefix(resp, limit)
        if not complete:
            resp.close()
        return reply

    async def send(self, request: OutboundRequest) -> UpstreamReply:
        """Send and read the whole (bounded) reply: for logins and token grants."""
        resp = await self.open(request)
        return await self.read_bounded(resp, 1024 * 1024)
