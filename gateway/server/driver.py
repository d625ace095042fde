"""The driver loop: run a call's credential flow, sending what it yields.

The flow (``upstreams/base.py``) yields the signed request and receives its
reply; a second request it yields is a replay, after it renewed the
credentials because the upstream provably refused them (a 401,
``token_expired``, StreamOne 282). The driver enforces the replay rule itself:
one replay at most, never of a streamed body (it is gone). Every other reply,
and every transport error, is final: a POST is never sent twice otherwise.
Logins and renewals are counted in ``gateway_auth_renewals_total`` through the
auth's ``AuthIO`` (``server/auth_io.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp

from gateway.core.errormap import MAX_ERROR_BODY
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.errors import UpstreamAuthFailed
from gateway.server.client import UpstreamClient, reply_head
from gateway.upstreams.base import Credential, CredentialRejected


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
    credential: Credential,
    request: OutboundRequest,
    *,
    body_limit: Callable[[UpstreamReply], int],
    body: Callable[[], AsyncIterator[bytes]] | None = None,
) -> Exchange:
    flow = credential.flow(request)
    attempt = 1
    try:
        signed = await anext(flow)
        for attempt in (1, 2):
            resp = await client.open(signed, body)
            head = reply_head(resp)
            limit = body_limit(head)
            if not limit and credential.requires_reply_body(head.status):
                limit = MAX_ERROR_BODY
            reply = head
            open_resp: aiohttp.ClientResponse | None = resp
            if limit:
                reply, complete = await client.read_prefix(resp, limit)
                open_resp = None if complete else resp
            try:
                signed = await flow.asend(reply)  # judged; renewed if it was refused
            except StopAsyncIteration:
                return Exchange(reply, open_resp)  # final
            except BaseException:
                _discard(open_resp)
                raise
            _discard(open_resp)  # refused: a replay follows, or none may
            if attempt == 2 or request.streamed_body:  # the body is gone: no replay
                break
    except CredentialRejected:
        pass
    except BaseException:
        await flow.aclose()  # left at its yield by a transport error
        raise
    await flow.aclose()
    raise _refused(client.cfg.name, replayed=attempt == 2)


def _discard(resp: aiohttp.ClientResponse | None) -> None:
    if resp is not None:
        resp.close()


def _refused(name: str, replayed: bool) -> UpstreamAuthFailed:
    if replayed:
        detail = f"{name} rejected the gateway's credentials after one renewal"
    else:
        detail = f"{name} rejected the gateway's credentials, which cannot be renewed here"
    return UpstreamAuthFailed(detail, upstream=name)
