"""Beeswax session paths, and the drop-in mode for SDKs that log in themselves.

Existing Beeswax client libraries begin with ``POST …/rest/authenticate`` (or
``/rest/v2/authenticate``) and may end with a logout. Behind the gateway the
session is the gateway's, so those calls are answered here, never forwarded:

- ``POST`` to an ``authenticate`` path (any base path, case, ``;params`` or
  percent-encoding) or to the configured ``login_path``: a login;
- ``DELETE`` to the same (``beeswax_wrapper``'s ``authentication.delete()``),
  or ``POST``/``GET``/``DELETE`` to a path ending in ``logout``: a logout;

each answered ``200`` with the Beeswax success envelope ``{"success": true,
"message": ...}`` and no cookie of any value. ``success`` is the JSON ``true``:
the SDKs test ``success === false`` (Node), ``not success`` (Python) or
``success !== true`` (Audiens' PHP client), and only ``true`` passes them all
(the upstream itself writes the string ``"true"``). The caller's body, which
holds an email and a password, is never read, kept, logged or forwarded; the
gateway's own session and its jar are not touched.

Every other call that would reach Beeswax's session handling (``PUT
/rest/authenticate`` changes a password, ``/rest/authenticate/strict``, a
``GET`` login, anything below the login path) is still refused with
``invalid_request``: a caller can neither fix nor end the shared session.
"""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import unquote

from gateway.core.messages import OutboundRequest
from gateway.errors import InvalidRequest
from gateway.upstreams.base import LocalAnswer

NAME = "beeswax"
# Path segments that reach Beeswax's own session handling (``/rest/authenticate``,
# ``/rest/v2/authenticate`` and anything below, a logout).
SESSION_SEGMENTS = frozenset({"authenticate", "logout"})
LOGIN_METHODS = frozenset({"POST"})
LOGOUT_ON_AUTHENTICATE = frozenset({"DELETE"})
LOGOUT_METHODS = frozenset({"POST", "GET", "DELETE"})
LOGIN_MESSAGE = "Logged in: the gateway holds the Beeswax session, no cookie is needed"
LOGOUT_MESSAGE = "Logged out: the gateway's Beeswax session is unchanged"
REFUSED = (
    "the gateway manages the Beeswax session: it answers a POST login and a logout itself;"
    " no other call reaches the session"
)

SessionCall = Literal["login", "logout", "refused"]


def segments(path: str) -> list[str]:
    """What the upstream's router would see: decoded, case-folded, without
    ``;parameters`` and empty segments (so ``/REST/Authenticate;x/`` matches)."""
    parts = (unquote(part).split(";", 1)[0].lower() for part in path.split("/"))
    return [part for part in parts if part]


def is_session_path(path: str, login_path: str) -> bool:
    """True when ``path`` would reach the login (or logout) instead of the API."""
    found = segments(path)
    login = segments(login_path)
    if login and found[: len(login)] == login:
        return True
    return any(segment in SESSION_SEGMENTS for segment in found)


def session_call(method: str, path: str, login_path: str) -> SessionCall | None:
    """How a caller's call to a session path is answered; None for an API call."""
    if not is_session_path(path, login_path):
        return None
    found = segments(path)
    if found[-1:] == ["authenticate"] or found == segments(login_path):
        if method in LOGIN_METHODS:
            return "login"
        return "logout" if method in LOGOUT_ON_AUTHENTICATE else "refused"
    if found[-1:] == ["logout"] and method in LOGOUT_METHODS:
        return "logout"
    return "refused"


def answer_locally(settings: Any, request: OutboundRequest) -> LocalAnswer | None:
    """The gateway's own answer to an SDK's login or logout (module docstring)."""
    kind = session_call(request.method, request.path, settings.login_path)
    if kind is None:
        return None
    if kind == "refused":
        raise InvalidRequest(REFUSED, upstream=NAME)
    message = LOGIN_MESSAGE if kind == "login" else LOGOUT_MESSAGE
    return LocalAnswer(200, json.dumps({"success": True, "message": message}).encode())
