"""The auth driver loop: prepare, send, observe, and at most one renewal and replay.

A replay happens only when the upstream provably rejected the first attempt
(``auth.rejected``: a 401, ``token_expired``, StreamOne 282). Every other reply,
and every transport error, is final: a POST is never sent twice otherwise.
Logins and renewals the auth performs are counted in
``gateway_auth_renewals_total`` through ``ctx.on_renewal``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp

from gateway.core.errormap import MAX_ERROR_BODY
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.errors import UpstreamAuthFailed
from gateway.server.client import UpstreamClient, reply_head
from gateway.upstreams.base import CallContext, UpstreamAuth


@dataclass
class Exchange:
    """The final reply.

    - ``reply.body is None``: nothing read; ``response`` is open for streaming.
    - ``reply.body`` set and ``response is None``: the whole body was read.
    - ``reply.body`` set and ``response`` open: a prefix was read (``truncated``),
      the rest is still to be streamed after it.

    ``body_limit(head)`` says how many bytes of a reply (status and headers
    known, body unread) to read for inspection (0: none).
    """

    reply: UpstreamReply
    response: aiohttp.ClientResponse | None


async def exchange(
    client: UpstreamClient,
    auth: UpstreamAuth,
    request: OutboundRequest,
    ctx: CallContext,
    *,
    body_limit: Callable[[UpstreamReply], int],
    body: Callable[[], AsyncIterator[bytes]] | None = None,
) -> Exchange:
    if ctx.on_renewal is None:
        renewals = client.metrics.auth_renewals
        ctx.on_renewal = lambda result: renewals.labels(ctx.upstream, result).inc()
    for attempt in (1, 2):
        prepared = await auth.prepare(request, ctx)
        resp = await client.open(prepared, body)
        head = reply_head(resp)
        limit = body_limit(head)
        if auth.wants_body(head.status) and not limit:
            limit = MAX_ERROR_BODY
        if limit:
            reply, complete = await client.read_prefix(resp, limit)
            open_resp = None if complete else resp
        else:
            reply, open_resp = head, resp
        auth.observe(reply, ctx)
        if not auth.rejected(reply, ctx):
            return Exchange(reply, open_resp)
        if open_resp is not None:
            open_resp.close()
        if attempt == 2:
            raise UpstreamAuthFailed(
                f"{ctx.upstream} rejected the gateway's credentials after one renewal",
                upstream=ctx.upstream,
            )
        if request.streamed_body:  # the body is gone: this call cannot be replayed
            break
        await auth.renew(ctx)
    raise UpstreamAuthFailed(
        f"{ctx.upstream} rejected the gateway's credentials, which cannot be renewed here",
        upstream=ctx.upstream,
    )
