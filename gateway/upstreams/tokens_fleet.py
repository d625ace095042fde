"""One OAuth 2 client-credentials token for every replica, through ``io.fleet``.

:class:`~gateway.upstreams.tokens.ClientCredentialsToken` calls :func:`obtain`
instead of granting on its own when the fleet is configured (Redis;
``docs/operations.md``, Running a fleet): a replica adopts the fleet's token
(``joined``) unless it is the one the upstream just refused or it is within
``renew_before`` of its expiry; otherwise one replica asks for a grant and
stores the token for the others, with the grant's ``expires_in`` as its TTL.
The fleet's key is the client (``client_id@token_url``, and the scope): one
token per client, whichever user or upstream holds it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gateway.config_reader import Secret
from gateway.upstreams.base import AuthIO, SharedSession

if TYPE_CHECKING:
    from gateway.upstreams.tokens import ClientCredentialsToken


def fleet_key(provider: ClientCredentialsToken) -> str:
    s = provider.settings
    return f"{s.client_id}@{s.token_url}" + (f" {s.scope}" if s.scope else "")


def _token_of(shared: SharedSession | None) -> tuple[str, float | None] | None:
    if shared is None:
        return None
    token, expires = shared.data.get("token"), shared.data.get("expires")
    if not isinstance(token, str) or not token:
        return None
    if isinstance(expires, int | float) and not isinstance(expires, bool):
        return token, float(expires)
    return token, None


async def obtain(
    provider: ClientCredentialsToken,
    io: AuthIO,
    rejected: Secret | None,
    grant: Callable[[], Awaitable[None]],
    wall: Callable[[], float] = time.time,
) -> None:
    assert io.fleet is not None
    clock, renew_before = provider.clock, provider.settings.renew_before

    def fresh(shared: SharedSession | None) -> bool:
        found = _token_of(shared)
        if found is None or (rejected is not None and found[0] == rejected.reveal()):
            return False
        return found[1] is None or found[1] - wall() > renew_before

    async def log_in() -> tuple[dict[str, Any], float | None]:
        await grant()
        assert provider.current is not None
        left = None if provider.expires is None else provider.expires - clock()
        expires = None if left is None else wall() + left
        return {"token": provider.current.reveal(), "expires": expires}, left

    shared, joined = await io.fleet.renew(io.upstream, fleet_key(provider), fresh, log_in)
    if joined:
        token, expires = _token_of(shared) or ("", None)
        io.masker.remember(token)
        provider.adopt(Secret(token), None if expires is None else clock() + expires - wall())
        io.joined()
