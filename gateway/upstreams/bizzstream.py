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

from gateway.config_reader import Secret, Section, extend
from gateway.core.errormap import parse_json
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.upstreams.base import (
    AuthIO,
    CredentialRejected,
    Flow,
    KeyValueStore,
    UpstreamSpec,
)
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
    """A token provider and its environment: a user's (``auth.users.<user>``), or the
    shared ones (``auth``'s own)."""

    provider: ProviderSettings
    environment_id: str


@dataclass(frozen=True)
class BizzStreamAuthSettings(BizzStreamCredentials):
    """The shared credentials and each user's."""

    users: Mapping[str, BizzStreamCredentials] = field(default_factory=dict)


def _parse_user(section: Section, environment_id: str) -> BizzStreamCredentials:
    """A user's provider, and environment: the shared one unless the user names one."""
    return BizzStreamCredentials(
        provider=parse_provider(section),
        environment_id=section.text("environment_id", environment_id),
    )


def parse_auth(section: Section) -> BizzStreamAuthSettings:
    environment_id = section.text("environment_id")
    shared = BizzStreamCredentials(provider=parse_provider(section), environment_id=environment_id)
    users = section.each("users", lambda sub: _parse_user(sub, environment_id))
    section.done()
    return extend(shared, BizzStreamAuthSettings, users=users)


def token_expired(reply: UpstreamReply) -> bool:
    """A 401 whose body says ``token_expired``: renew the token and replay once."""
    if reply.status != 401:
        return False
    body = parse_json(reply.body)
    return isinstance(body, dict) and body.get("error") == "token_expired"


@dataclass(frozen=True, slots=True)
class BearerCredential:
    """A token provider and its environment: the shared one, or a user's."""

    provider: TokenProvider
    account: str  # the environment id
    io: AuthIO

    def needs_body(self, request: OutboundRequest) -> bool:
        """Only a renewable token is ever replayed: a static token's calls stream through."""
        return self.provider.can_renew

    def requires_reply_body(self, status: int) -> bool:
        return status == 401  # token_expired is in the body

    def signed(self, request: OutboundRequest, token: Secret) -> OutboundRequest:
        return request.with_headers(
            (("Authorization", f"Bearer {token.reveal()}"), ("environment-id", self.account))
        )

    async def flow(self, request: OutboundRequest) -> Flow:
        token = await self.provider.token(self.io)
        reply = yield self.signed(request, token)
        if not token_expired(reply):
            return
        if request.streamed_body and self.provider.can_renew:  # never replayed: no renewal
            raise CredentialRejected
        # single-flight; a static token (whose bodies stream): counted as an error, refused
        await self.provider.renew(self.io, token)
        reply = yield self.signed(request, await self.provider.token(self.io))
        if token_expired(reply):
            raise CredentialRejected


class BearerEnvironmentAuth:
    def __init__(self, settings: BizzStreamAuthSettings, io: AuthIO | None = None) -> None:
        self.settings = settings
        io = io or AuthIO(NAME)

        def credential(creds: BizzStreamCredentials) -> BearerCredential:
            return BearerCredential(build_provider(creds.provider), creds.environment_id, io)

        self._shared = credential(settings)
        self._users = {user: credential(creds) for user, creds in settings.users.items()}

    async def bind(self, user: str | None, store: KeyValueStore | None) -> BearerCredential:
        return self._users.get(user or "", self._shared)


SPEC = UpstreamSpec(
    name=NAME,
    parse_auth=parse_auth,
    build_auth=BearerEnvironmentAuth,
    parse_error=parse_error,
)
