"""BizzStream REST API: bearer token plus ``environment-id`` header.

Auth (docs/upstreams.md § bizzstream): every call carries ``Authorization: Bearer
<token>`` and ``environment-id``. The token comes from a provider
(:mod:`gateway.upstreams.tokens`: static, file, OAuth 2 client credentials).
On a 401 whose body says ``token_expired`` the token is renewed once
(single-flight) and the call is replayed once; a second refusal is
``upstream_auth_failed``.

Per-user credentials: ``auth.users.<X-Gateway-User>`` may give its own provider
(and environment); otherwise the shared one is used. The quota key is the
environment id (docs/contract.md §2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.config_reader import Section
from gateway.core.errormap import parse_json
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.upstreams.base import CallContext, UpstreamSpec
from gateway.upstreams.bizzstream_errors import parse_error
from gateway.upstreams.tokens import (
    ProviderSettings,
    TokenProvider,
    build_provider,
    parse_provider,
)

NAME = "bizzstream"


@dataclass(frozen=True)
class BizzStreamCredentials:
    provider: ProviderSettings
    environment_id: str


@dataclass(frozen=True)
class BizzStreamAuthSettings:
    provider: ProviderSettings
    environment_id: str
    users: Mapping[str, BizzStreamCredentials] = field(default_factory=dict)


def parse_auth(section: Section) -> BizzStreamAuthSettings:
    environment_id = section.text("environment_id")
    provider = parse_provider(section)
    users = section.each(
        "users",
        lambda sub: BizzStreamCredentials(
            provider=parse_provider(sub), environment_id=sub.text("environment_id", environment_id)
        ),
    )
    section.done()
    return BizzStreamAuthSettings(provider=provider, environment_id=environment_id, users=users)


@dataclass
class _Holder:
    provider: TokenProvider
    environment_id: str


class BearerEnvironmentAuth:
    def __init__(self, settings: BizzStreamAuthSettings) -> None:
        self.settings = settings
        self._shared = _Holder(build_provider(settings.provider), settings.environment_id)
        self._users = {
            user: _Holder(build_provider(creds.provider), creds.environment_id)
            for user, creds in settings.users.items()
        }
        # A replay needs the body; only a renewable token is ever replayed. The
        # proxy asks before bind(), so any renewable holder means buffering.
        self._replayable = any(
            holder.provider.can_renew for holder in (self._shared, *self._users.values())
        )

    def _holder(self, ctx: CallContext) -> _Holder:
        if isinstance(ctx.credential, _Holder):
            return ctx.credential
        return self._users.get(ctx.user or "", self._shared)

    async def bind(self, ctx: CallContext) -> None:
        ctx.credential = self._holder(ctx)

    def needs_body(self, request: OutboundRequest) -> bool:
        """True when a token_expired answer may be replayed, so the body must be kept.

        A static token cannot be renewed: its calls are never replayed and
        their bodies stream through unbuffered.
        """
        return self._replayable

    async def prepare(self, request: OutboundRequest, ctx: CallContext) -> OutboundRequest:
        holder = self._holder(ctx)
        token = await holder.provider.token(ctx)
        ctx.account = holder.environment_id
        ctx.stale = token
        return request.with_header("Authorization", f"Bearer {token.reveal()}").with_header(
            "environment-id", holder.environment_id
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
        await self._holder(ctx).provider.renew(ctx, ctx.stale)
        ctx.renewed = True

    def account(self, ctx: CallContext) -> str:
        return self._holder(ctx).environment_id


SPEC = UpstreamSpec(
    name=NAME,
    parse_auth=parse_auth,
    build_auth=BearerEnvironmentAuth,
    parse_error=parse_error,
)
