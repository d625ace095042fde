"""Driving a credential flow by hand, as the driver (``gateway/server/driver.py``) does."""

from __future__ import annotations

from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.upstreams.base import Credential, Flow


async def signed(credential: Credential, request: OutboundRequest) -> tuple[Flow, OutboundRequest]:
    """The call's flow and the signed request it yields first (after a login, if any)."""
    flow = credential.flow(request)
    return flow, await anext(flow)


async def answer(flow: Flow, reply: UpstreamReply) -> OutboundRequest | None:
    """The renewed request the flow yields when it judges ``reply`` a rejection;
    None when the reply is final."""
    try:
        return await flow.asend(reply)
    except StopAsyncIteration:
        return None
