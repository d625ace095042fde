"""Caller authentication and the users a caller may act for (``callers.tokens``).

Every request's ``X-Gateway-User``, when sent, must be 1-128 printable ASCII
characters (else 400 ``invalid_request``): :func:`check_gateway_user`, the
first check the problem middleware runs, before anything else about the
request. It becomes the request's user (the access log's ``user``, and on every
line logged while serving the request).

When ``callers.tokens`` is configured, every request but the open reserved
paths (``gateway/core/reserved.py``: the health paths, the browsers' onboarding
callbacks and the problem pages) must carry ``Authorization: Bearer <token>`` of one
of them (else 401 ``caller_unauthorized``). The matching
:class:`~gateway.config_callers.CallerToken` is kept on the request
(:data:`CALLER`); an ``X-Gateway-User`` it does not name is refused with 403
``forbidden`` before anything is signed, and the onboarding routes check the
``user`` they are asked for the same way (:func:`require_user`).
"""

from __future__ import annotations

import hmac

from aiohttp import web

from gateway.config_callers import CallerToken
from gateway.core.headers import GATEWAY_USER
from gateway.core.reserved import is_open
from gateway.errors import CallerForbidden, CallerUnauthorized, InvalidRequest
from gateway.server.keys import config_of
from gateway.server.requestinfo import INFO

CALLER = web.RequestKey("gateway_caller", CallerToken)


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


def check_gateway_user(request: web.Request) -> None:
    """A well-formed ``X-Gateway-User`` becomes the request's user; else 400."""
    user = request.headers.get("X-Gateway-User")
    if user is not None:
        if not GATEWAY_USER.match(user):
            raise InvalidRequest("X-Gateway-User must be 1-128 printable characters")
        request[INFO].user = user  # on every line logged from here on (logs.py)


def check_caller(request: web.Request) -> None:
    """With ``callers.tokens``: the caller's token (401) and its right to act for the
    request's user (403), except on the open paths."""
    tokens = config_of(request.app).caller_tokens  # a reload may change them
    if tokens and not is_open(request.path):
        caller = _match(tokens, request.headers.get("Authorization", ""))
        if caller is None:
            raise CallerUnauthorized("a valid caller token is required (Authorization: Bearer)")
        request[CALLER] = caller
        user = request[INFO].user
        if user is not None:
            require_user(request, user)
