"""BizzStream REST API: bearer token plus ``environment-id`` header.

Auth (upstreams.md): every call carries ``Authorization: Bearer <token>`` and
``environment-id``. On a 401 whose body says ``token_expired`` the token is
renewed once (single-flight) and the call is replayed once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gateway.config_reader import Secret, Section
from gateway.core.errormap import parse_json
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.upstreams.base import CallContext, UpstreamSpec
from gateway.upstreams.bizzstream_errors import parse_error

NAME = "bizzstream"


@dataclass(frozen=True)
class BizzStreamAuthSettings:
    token: Secret
    environment_id: str


def parse_auth(section: Section) -> BizzStreamAuthSettings:
    settings = BizzStreamAuthSettings(
        token=section.secret("token"),
        environment_id=section.text("environment_id"),
    )
    section.done()
    return settings


class BearerEnvironmentAuth:
    def __init__(self, settings: BizzStreamAuthSettings) -> None:
        self.settings = settings
        self._token = settings.token
        self._lock = asyncio.Lock()

    def needs_body(self, request: OutboundRequest) -> bool:
        return True  # a token_expired answer is replayed, so the body must be kept

    async def prepare(self, request: OutboundRequest, ctx: CallContext) -> OutboundRequest:
        ctx.account = self.settings.environment_id
        ctx.stale = self._token
        return request.with_header("Authorization", f"Bearer {self._token.reveal()}").with_header(
            "environment-id", self.settings.environment_id
        )

    def observe(self, reply: UpstreamReply, ctx: CallContext) -> None:
        return None

    def wants_body(self, status: int) -> bool:
        return status == 401

    def rejected(self, reply: UpstreamReply, ctx: CallContext) -> bool:
        if reply.status != 401:
            return False
        body = parse_json(reply.body)
        return isinstance(body, dict) and body.get("error") == "token_expired"

    async def renew(self, ctx: CallContext) -> None:
        async with self._lock:
            # A static token cannot be renewed: the replay will fail again and
            # the driver answers upstream_auth_failed.
            ctx.renewed = False

    def account(self, ctx: CallContext) -> str:
        return self.settings.environment_id


SPEC = UpstreamSpec(
    name=NAME,
    parse_auth=parse_auth,
    build_auth=BearerEnvironmentAuth,
    parse_error=parse_error,
)
