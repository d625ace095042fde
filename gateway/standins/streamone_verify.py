"""StreamOne API v3 signature verification (docs/upstreams.md § streamone, Auth).

Written from the spec with the standard library only, as the independent check
of the gateway's signing. The server checks the bytes it received, in the order
it received them (SDKs differ in parameter order), so nothing is re-encoded:

1. :func:`split_signature`: ``signature=<hex>`` must be the last query parameter.
2. :func:`string_to_sign`: ``path + "?" + query-without-signature + "&" + body``;
   the ``&`` is there even for an empty body.
3. :func:`sign`: lowercase hex HMAC-SHA1 keyed with the actor's pre-shared key,
   or ``application_psk + session_key`` for a session call (:func:`session_signing_key`).

Sessions (``upstreams.md`` § streamone, Sessions, as the official PHP SDK v3
computes the proof): the platform keeps only ``H = crypt(md5_hex(password),
salt)`` per user (:func:`stored_hash`, bcrypt, ``$2y$``), hands out ``H``'s salt
and a challenge, and checks ``response == base64(sha256_hex(sha256_hex(H) +
challenge) XOR H)`` (:func:`response_matches`). A user still held as an API v2
hash (``md5_hex(password)``) is asked for ``v2hash`` and converted on login.

:func:`authenticate` applies all of it to one call, plus the actor, session,
timestamp and invalid-authentication checks; it does no I/O and takes ``now``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import bcrypt

SIGNATURE_PARAM = "signature="


def split_signature(raw_query: str) -> tuple[str, str] | None:
    """``(query without the trailing signature, signature)``, or None when the
    last parameter is not ``signature``."""
    head, _, last = raw_query.rpartition("&")
    if not last.startswith(SIGNATURE_PARAM):
        return None
    return head, last[len(SIGNATURE_PARAM) :]


def string_to_sign(raw_path: str, raw_query: str, body: bytes) -> bytes:
    """The exact bytes that are signed: ``path?query&body``."""
    return raw_path.encode() + b"?" + raw_query.encode() + b"&" + body


def session_signing_key(application_psk: str, session_key: str) -> str:
    return application_psk + session_key


def sign(key: str, to_sign: bytes) -> str:
    """Lowercase hex HMAC-SHA1 of ``to_sign`` keyed with ``key``."""
    return hmac.new(key.encode(), to_sign, hashlib.sha1).hexdigest()


def signature_matches(key: str, to_sign: bytes, received: str) -> bool:
    return hmac.compare_digest(sign(key, to_sign).encode(), received.encode())


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def md5_hex(text: str) -> str:
    """The API v2 password hash, and what ``crypt`` is applied to."""
    return hashlib.md5(text.encode()).hexdigest()


def new_salt(cost: int) -> str:
    """A fresh PHP bcrypt salt, ``$2y$<cost>$`` + 22 characters."""
    return "$2y" + bcrypt.gensalt(rounds=cost).decode()[3:]


def stored_hash(v2_hash: str, salt: str) -> str:
    """PHP's ``crypt(v2_hash, salt)`` for a ``$2y$`` salt: bcrypt's ``$2b$`` under
    PHP's name (the two only differ for non-ASCII input)."""
    hashed = bcrypt.hashpw(v2_hash.encode(), b"$2b" + salt[3:29].encode()).decode()
    return salt[:3] + hashed[3:]


def salt_of(hashed: str) -> str:
    """The salt to hand out for a stored hash: bcrypt's first 29 characters, else
    everything up to the last ``$`` (``$6$salt$`` for SHA-512 crypt)."""
    if hashed.startswith(("$2a$", "$2b$", "$2y$")):
        return hashed[:29]
    return hashed[: hashed.rfind("$") + 1]


def expected_response(hashed: str, challenge: str) -> str:
    digest = _sha256_hex(_sha256_hex(hashed) + challenge).encode()
    return base64.b64encode(
        bytes(a ^ b for a, b in zip(digest, hashed.encode(), strict=False))
    ).decode()


def response_matches(hashed: str, challenge: str, response: str) -> bool:
    return hmac.compare_digest(expected_response(hashed, challenge).encode(), response.encode())


FAILURE_MEMORY = 60.0  # seconds during which a failed authentication counts
AUTH_STATUSES = frozenset({2, 3, 282})  # the statuses that are failed authentications


class Failed(Exception):
    """A non-zero StreamOne status; ``stat`` names a counter to bump."""

    def __init__(self, status: int, message: str, stat: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.stat = status, message, stat


@dataclass
class Session:
    id: str
    key: str
    application: str
    user: dict[str, str]
    expires: float


@dataclass
class AuthState:
    sessions: dict[str, Session] = field(default_factory=dict)
    failures: dict[str, deque[float]] = field(default_factory=dict)  # per actor


@dataclass(frozen=True)
class SignedCall:
    """A call as received: raw path, raw query (signature included) and raw body."""

    raw_path: str
    raw_query: str
    body: bytes


@dataclass(frozen=True)
class Caller:
    auth_type: str  # "user" or "application"
    actor: str
    principal: str  # the session's username, else the actor id
    session: Session | None


def authenticate(
    call: SignedCall,
    params: Mapping[str, str],
    settings: Mapping[str, Any],
    auth: AuthState,
    now: float,
) -> Caller:
    """Check the actor, the session, the signature and the timestamp, in that order.

    Raises :class:`Failed`: 8 once ``invalid_auth_limit`` failures of this actor
    happened within :data:`FAILURE_MEMORY` seconds, else 3, 282 or 2. A valid
    session call pushes the session's expiry to ``now + session_timeout``.
    """
    split = split_signature(call.raw_query)
    auth_type = params.get("authentication_type", "")
    actor = params.get(auth_type, "") if auth_type in ("user", "application") else ""
    failures = auth.failures.setdefault(f"{auth_type}:{actor}", deque())
    while failures and now - failures[0] > FAILURE_MEMORY:
        failures.popleft()
    if len(failures) >= int(settings["invalid_auth_limit"]):
        raise Failed(8, "Too many invalid authentication attempts", "rate_limited")
    try:
        psk = settings[f"{auth_type}s"].get(actor) if actor else None
        if split is None or psk is None:
            raise Failed(3, "Missing signature or unknown actor", "signature_invalid")
        key, session = psk, None
        if "session" in params:
            session = auth.sessions.get(params["session"])
            if (
                auth_type != "application"
                or session is None
                or session.application != actor
                or session.expires < now
            ):
                raise Failed(282, "Session not found", "session_not_found")
            key = session_signing_key(psk, session.key)
        if not signature_matches(key, string_to_sign(call.raw_path, split[0], call.body), split[1]):
            raise Failed(3, "Invalid signature", "signature_invalid")
        timestamp = params.get("timestamp", "")
        if not timestamp.isdigit() or abs(now - int(timestamp)) > settings["timestamp_window"]:
            raise Failed(2, "Timestamp out of range", "timestamp_invalid")
    except Failed:
        failures.append(now)
        raise
    if session is not None:
        session.expires = now + float(settings["session_timeout"])
        return Caller(auth_type, actor, session.user["username"], session)
    return Caller(auth_type, actor, actor, None)
