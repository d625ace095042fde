"""HTTP client per upstream: explicit pool and timeouts, aiohttp errors translated here.

This is the one place where aiohttp client exceptions become gateway errors
(``raise ... from exc``). Replies are not decompressed: successful bodies go
back to the caller byte for byte.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from yarl import URL

from gateway.config import UpstreamConfig
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


def make_session(cfg: UpstreamConfig) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=cfg.pool_size,
        limit_per_host=cfg.pool_size,
        ttl_dns_cache=300,
        keepalive_timeout=30,
    )
    timeout = aiohttp.ClientTimeout(
        total=cfg.total_timeout,
        sock_connect=cfg.connect_timeout,
        connect=cfg.connect_timeout,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),  # upstream cookies are kept by the auth, per tenant
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        raise_for_status=False,
        middlewares=(never_resend,),
    )


def reply_head(resp: aiohttp.ClientResponse) -> UpstreamReply:
    return UpstreamReply(status=resp.status, headers=tuple(resp.headers.items()))


class UpstreamClient:
    def __init__(self, cfg: UpstreamConfig, session: aiohttp.ClientSession, metrics: Metrics):
        self.cfg = cfg
        self.session = session
        self.metrics = metrics

    async def open(
        self, request: OutboundRequest, body: BodySource | None = None
    ) -> aiohttp.ClientResponse:
        """Send a request and return the response with its body unread."""
        data: object = request.body
        if request.streamed_body and body is not None:
            data = body()
        started = time.perf_counter()
        try:
            resp = await self.session.request(
                request.method,
                URL(request.url, encoded=True),
                headers=list(request.headers),
                data=data,
                allow_redirects=False,
            )
        except GatewayError:
            raise
        except Exception as exc:
            # The caller's streamed body failed (over the limit, or broken off):
            # aiohttp wraps the generator's error; that error is the real answer.
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, GatewayError):
                raise cause from None
            raise self._translate(exc) from exc
        finally:
            self.metrics.upstream_duration.labels(self.cfg.name).observe(
                time.perf_counter() - started
            )
        return resp

    def _translate(self, exc: Exception) -> Exception:
        """The one place where aiohttp client errors become gateway errors."""
        if isinstance(exc, TimeoutError):
            return UpstreamTimeout(
                f"{self.cfg.name} did not answer within {self.cfg.total_timeout:g}s",
                upstream=self.cfg.name,
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            return UpstreamUnavailable(f"cannot connect to {self.cfg.name}", upstream=self.cfg.name)
        if isinstance(exc, SentOnce | aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
            return UpstreamUnavailable(
                f"{self.cfg.name} closed the connection", upstream=self.cfg.name
            )
        if isinstance(exc, aiohttp.ClientError):
            return UpstreamError(
                f"{self.cfg.name} sent a reply the gateway cannot read", upstream=self.cfg.name
            )
        return exc

    async def read_prefix(
        self, resp: aiohttp.ClientResponse, limit: int
    ) -> tuple[UpstreamReply, bool]:
        """Read at most ``limit`` bytes of the body.

        Returns the reply (``truncated`` set when more follows; ``body`` then
        holds everything read so far, a little over ``limit``) and whether the
        body is complete. A complete body releases the connection; an
        incomplete one leaves ``resp`` open so the rest can be streamed on.
        """
        head = reply_head(resp)
        chunks: list[bytes] = []
        size = 0
        complete = True
        try:
            while True:
                chunk = await resp.content.read(64 * 1024)
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
                f"{self.cfg.name} did not finish its reply in time", upstream=self.cfg.name
            ) from exc
        except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
            resp.close()
            raise UpstreamError(
                f"{self.cfg.name} broke off its reply", upstream=self.cfg.name
            ) from exc
        if complete:
            resp.release()
        reply = UpstreamReply(
            status=head.status, headers=head.headers, body=b"".join(chunks), truncated=not complete
        )
        return reply, complete

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
