"""StreamOne sessions (docs/upstreams.md § streamone, Sessions): an application logs a
user in, then signs calls with ``application_psk + session_key``.

1. ``session/initialize`` with ``user`` and ``userip`` → ``challenge``, ``salt``,
   ``needsv2hash``;
2. ``session/create`` with ``challenge`` and the ``response`` proof
   (:func:`gateway.core.streamone_password.session_response`, and ``v2hash`` when
   asked) → ``id``, ``key``, ``timeout``, ``user``;
3. later replies carry ``header.sessiontimeout`` (seconds left), which keeps the
   expiry current; the session is renewed ``renew_before`` ahead of it, and on
   status 282 ``SESSION_NOT_FOUND``.

:func:`parse_envelope` reads a reply; :func:`session_from_create` checks the
``session/create`` body; :func:`api_root` says where the session calls go. No
I/O here: the auth sends through ``io.send`` (:class:`~gateway.upstreams.base.AuthIO`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.config_reader import Secret
from gateway.core.errormap import parse_json
from gateway.core.messages import UpstreamReply

SESSION_NOT_FOUND = 282
# <base path>/api/<command>/<action>, as map_path and the proxy build it; the
# greedy prefix takes the *last* /api/, so a base path may contain one too.
_CALL_PATH = re.compile(r"^(?P<root>.*/api)/[^/]+/[^/]+/?$")


def api_root(path: str) -> str | None:
    """``<base path>/api`` of a call's outbound path, where ``session/...`` goes too.

    None when the path is not ``.../api/<command>/<action>``.

    >>> api_root("/api/v3/api/item/view")
    '/api/v3/api'
    """
    match = _CALL_PATH.match(path)
    return match["root"] if match else None


@dataclass(frozen=True)
class SessionSettings:
    user: str
    password: Secret
    userip: str
    renew_before: float


@dataclass
class LiveSession:
    id: str
    key: Secret
    user: str
    expires: float  # on the auth's monotonic clock

    def __repr__(self) -> str:
        return f"LiveSession(user={self.user!r}, expires={self.expires:.0f})"


@dataclass(frozen=True)
class Envelope:
    status: int | None  # None: not a StreamOne envelope
    header: dict[str, Any]
    body: Any


def parse_envelope(reply: UpstreamReply) -> Envelope:
    data = parse_json(reply.body)
    if not isinstance(data, dict) or not isinstance(data.get("header"), dict):
        return Envelope(None, {}, None)
    header = data["header"]
    status = header.get("status")
    ok = isinstance(status, int) and not isinstance(status, bool)
    return Envelope(status if ok else None, header, data.get("body"))


def session_timeout(reply: UpstreamReply) -> float | None:
    """``header.sessiontimeout``: the seconds the session has left, if given."""
    left = parse_envelope(reply).header.get("sessiontimeout")
    if isinstance(left, int | float) and not isinstance(left, bool) and left >= 0:
        return float(left)
    return None


def challenge_from_initialize(body: Any) -> tuple[str, str, bool] | None:
    if not isinstance(body, dict):
        return None
    challenge, salt = body.get("challenge"), body.get("salt")
    if not isinstance(challenge, str) or not isinstance(salt, str):
        return None
    return challenge, salt, bool(body.get("needsv2hash"))


def session_from_create(body: Any, now: float) -> LiveSession | None:
    if not isinstance(body, dict):
        return None
    ident, key, timeout = body.get("id"), body.get("key"), body.get("timeout")
    user = body.get("user")
    name = user.get("username") if isinstance(user, dict) else user
    if not isinstance(ident, str) or not isinstance(key, str):
        return None
    if not isinstance(timeout, int | float) or isinstance(timeout, bool):
        return None
    return LiveSession(ident, Secret(key), str(name or ""), now + float(timeout))
