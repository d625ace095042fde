"""Auth that attaches nothing. Used only until an upstream's real flow lands."""

from __future__ import annotations

from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.upstreams.base import CallContext


class NoAuth:
    def __init__(self, account: str) -> None:
        self._account = account

    def needs_body(self, request: OutboundRequest) -> bool:
        return False

    async def prepare(self, request: OutboundRequest, ctx: CallContext) -> OutboundRequest:
        ctx.account = self._account
        return request

    def observe(self, reply: UpstreamReply, ctx: CallContext) -> None:
        return None

    def wants_body(self, status: int) -> bool:
        return False

    def rejected(self, reply: UpstreamReply, ctx: CallContext) -> bool:
        return False

    async def renew(self, ctx: CallContext) -> None:
        return None

    def account(self, ctx: CallContext) -> str:
        return self._account
