"""BuzzStream 3-legged OAuth 1.0a (RFC 5849 §2): the requests, the replies, the store.

The server routes (:mod:`gateway.server.oauth_routes`) drive the flow:

1. :func:`request_token_request` (§2.1) with ``oauth_callback``; the reply is
   parsed by :func:`parse_token_reply` and the temporary secret is kept
   (:func:`save_pending`, for :data:`PENDING_TTL` seconds) under the request token;
2. the user approves at :func:`authorize_location` (§2.2);
3. :func:`access_token_request` (§2.3) with the verifier; the token pair is
   stored for that user (:func:`save_user_token`).

Values are JSON; the store the server passes in encrypts them at rest. Keys:
``oauth1:buzzstream:user:<id>`` and ``oauth1:buzzstream:pending:<request token>``.

Every token secret obtained at run time (a reply of §2.1/§2.3, or read back
from the store, perhaps written by another replica) is registered with
:func:`gateway.core.secrets.remember_secret`, so logs and error bodies mask it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.core.oauth1 import OAuth1Credentials, sign
from gateway.core.secrets import remember_secret
from gateway.errors import UpstreamAuthFailed, UpstreamError
from gateway.upstreams.base import KeyValueStore

USER_KEY = "oauth1:buzzstream:user:"
PENDING_KEY = "oauth1:buzzstream:pending:"
PENDING_TTL = 600.0  # seconds a user has to approve at BuzzStream
GONE_TTL = 0.001  # the store has no delete: an empty value that expires at once


def _decode(raw: bytes | None, *fields: str) -> tuple[str, ...] | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(f), str) for f in fields):
        return None
    return tuple(str(data[f]) for f in fields)


async def load_user_token(store: KeyValueStore, user: str) -> tuple[str, str] | None:
    found = _decode(await store.get(USER_KEY + user), "token", "token_secret")
    if found is None:
        return None
    remember_secret(found[1])
    return found[0], found[1]


async def save_user_token(store: KeyValueStore, user: str, token: str, secret: str) -> None:
    value = json.dumps({"token": token, "token_secret": secret}).encode()
    await store.set(USER_KEY + user, value)


@dataclass(frozen=True)
class Pending:
    """An onboarding between its request token and the user's approval."""

    user: str
    secret: str  # the request token's secret
    replace: bool = False  # the caller asked to replace the user's stored token
    caller: str = ""  # the caller's name (callers.tokens[].name), for the log


async def save_pending(
    store: KeyValueStore,
    request_token: str,
    user: str,
    secret: str,
    *,
    replace: bool = False,
    caller: str = "",
) -> None:
    value = {"user": user, "token_secret": secret, "replace": replace, "caller": caller}
    await store.set(PENDING_KEY + request_token, json.dumps(value).encode(), ttl=PENDING_TTL)


async def take_pending(store: KeyValueStore, request_token: str) -> Pending | None:
    """The onboarding a request token started, usable once."""
    key = PENDING_KEY + request_token
    raw = await store.get(key)
    found = _decode(raw, "user", "token_secret")
    if found is None:
        return None
    remember_secret(found[1])
    await store.set(key, b"", ttl=GONE_TTL)
    data = json.loads(raw or b"{}")
    caller = data.get("caller")
    return Pending(
        found[0], found[1], data.get("replace") is True, caller if isinstance(caller, str) else ""
    )


def _signed_post(
    base_url: str,
    path: str,
    creds: OAuth1Credentials,
    nonce: str,
    timestamp: int,
    callback: str | None = None,
    verifier: str | None = None,
) -> OutboundRequest:
    signed = sign(
        "POST", base_url + path, "", "", b"", creds,
        nonce=nonce, timestamp=timestamp, callback=callback, verifier=verifier,
    )  # fmt: skip
    return OutboundRequest(
        method="POST",
        base_url=base_url,
        path=path,
        headers=(("Authorization", signed.header), ("Accept", "application/x-www-form-urlencoded")),
        body=b"",
    )


def request_token_request(
    consumer: OAuth1Credentials,
    base_url: str,
    path: str,
    callback: str,
    *,
    nonce: str,
    timestamp: int,
) -> OutboundRequest:
    """RFC 5849 §2.1: ``POST <base>/requestToken`` signed with ``oauth_callback``.

    ``base_url`` is the origin; ``path`` includes the base path.
    """
    return _signed_post(base_url, path, consumer, nonce, timestamp, callback=callback)


def access_token_request(
    consumer: OAuth1Credentials,
    base_url: str,
    path: str,
    request_token: str,
    request_secret: str,
    verifier: str,
    *,
    nonce: str,
    timestamp: int,
) -> OutboundRequest:
    """RFC 5849 §2.3: ``POST <base>/accessToken`` signed with the request token and verifier."""
    creds = OAuth1Credentials(
        consumer.consumer_key, consumer.consumer_secret, request_token, request_secret
    )
    return _signed_post(base_url, path, creds, nonce, timestamp, verifier=verifier)


def parse_token_reply(reply: UpstreamReply, step: str, upstream: str) -> tuple[str, str]:
    """``oauth_token`` and ``oauth_token_secret`` of a form-encoded reply (§2.1, §2.3)."""
    if reply.status in (400, 401, 403):
        raise UpstreamAuthFailed(
            f"{upstream} refused the {step} (HTTP {reply.status})", upstream=upstream
        )
    fields = dict(parse_qsl((reply.body or b"").decode("utf-8", "replace")))
    token, secret = fields.get("oauth_token"), fields.get("oauth_token_secret")
    remember_secret(secret)
    if reply.status != 200 or not token or not secret:
        raise UpstreamError(
            f"{upstream} answered the {step} with HTTP {reply.status} and no token",
            upstream=upstream,
        )
    if step == "request token" and fields.get("oauth_callback_confirmed") != "true":
        raise UpstreamError(f"{upstream} did not confirm the callback", upstream=upstream)
    return token, secret


def authorize_location(base_url: str, authorize_url: str, request_token: str) -> str:
    """RFC 5849 §2.2: where the user approves. ``authorize_url`` is absolute or
    a path below ``base_url`` (the upstream's full base URL)."""
    target = authorize_url if "://" in authorize_url else base_url + authorize_url
    joiner = "&" if "?" in target else "?"
    return f"{target}{joiner}{urlencode({'oauth_token': request_token})}"
