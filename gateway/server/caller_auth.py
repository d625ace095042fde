"""Caller authentication and the users a caller may act for (``callers.tokens``).

When ``callers.tokens`` is configured, every request but the health paths, the
browser's OAuth callback and the problem pages must carry ``Authorization: Bearer <token>`` of one
of them (else 401 ``caller_unauthorized``). The matching
:class:`~gateway.config_callers.CallerToken` is kept on the request
(:data:`CALLER`); an ``X-Gateway-User`` it does not name is refused with 403
``forbidden`` before anything is signed, and the onboarding routes check the
``user`` they are asked for the same way (:func:`require_user`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.config_callers import CallerToken
from gateway.errors import CallerForbidden, CallerUnauthorized
from gateway.server.health import RESERVED
from gateway.server.keys import config_of
from gateway.server.problem_pages import PROBLEM_PAGES
from gateway.server.requestinfo import INFO

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A browser back from an upstream carries no caller token; the one-time OAuth request
# token guards this route instead (gateway/server/oauth_routes.py).
BROWSER_CALLBACKS = frozenset({"/oauth/buzzstream/callback"})
CALLER = web.RequestKey("gateway_caller", CallerToken)


def _open_path(path: str) -> bool:
    """Health, a browser callback, or a problem type's page (public documentation)."""
    return path in RESERVED or path in BROWSER_CALLBACKS or path.startswith(PROBLEM_PAGES)


def _match(tokens: tuple[CallerToken, ...], given: str) -> CallerToken | None:
    scheme, _, value = given.partition(" ")
    raw = value.encode("utf-8", "surrogateescape")  # never fails on odd bytes
    found = None
    for caller in tokens:  # every comparison runs: the time does not tell which matched
        if hmac.compare_digest(raw, caller.token.reveal().encode()):
            found = caller
    return found if scheme.lower() == "bearer" else None


def require_user(request: web.Request, user: str) -> CallerToken | None:
    """Refuse (403 ``forbidden``) when the authenticated caller may not act for ``user``.

    ``None`` when no caller authentication is configured: any local caller may."""
    caller = request.get(CALLER)
    if caller is not None and not caller.may_act_for(user):
        raise CallerForbidden(
            f"the caller {caller.name!r} may not act for the user {user!r} (callers.tokens[].users)"
        )
    return caller


@web.middleware
async def caller_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    tokens = config_of(request.app).caller_tokens  # a reload may change them
    if tokens and not _open_path(request.path):
        caller = _match(tokens, request.headers.get("Authorization", ""))
        if caller is None:
            raise CallerUnauthorized("a valid caller token is required (Authorization: Bearer)")
        request[CALLER] = caller
        user = request[INFO].user
        if user is not None:
            require_user(request, user)
    return await handler(request)
