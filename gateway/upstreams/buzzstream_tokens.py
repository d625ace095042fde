"""BuzzStream 3-legged OAuth 1.0a (RFC 5849 §2): the requests, the replies, the store.

:data:`ONBOARDING` (``SPEC.onboarding``) is what the generic routes
``/oauth/buzzstream/start|callback`` (``server/oauth_routes.py``, driving
:mod:`gateway.upstreams.onboarding`) call:

1. :func:`request_token_request` (§2.1) with ``oauth_callback``; the reply is
   parsed by :func:`parse_token_reply` and the temporary secret is kept
   (:func:`save_pending`, for :data:`PENDING_TTL` seconds) under the request token;
2. the user approves at :func:`authorize_location` (§2.2);
3. :func:`access_token_request` (§2.3) with the verifier; the token pair is
   stored for that user (:func:`save_user_token`).

Values are JSON; the store the server passes in encrypts them at rest. Keys:
``oauth1:buzzstream:user:<id>`` and ``oauth1:buzzstream:pending:<request token>``.

Every token secret obtained at run time (a reply of §2.1/§2.3, or read back
from the store, perhaps written by another replica) is remembered by the app's
masker (the routes' and the auth's), so logs and error bodies mask it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.core.oauth1 import OAuth1Credentials, sign
from gateway.core.secrets import SecretMasker
from gateway.errors import InvalidRequest, UpstreamAuthFailed, UpstreamError
from gateway.upstreams import onboarding
from gateway.upstreams.base import KeyValueStore
from gateway.upstreams.onboarding import (
    PRINTABLE,
    Approval,
    Fresh,
    Onboarding,
    Pending,
    Returned,
    Site,
    TokenCall,
)

if TYPE_CHECKING:
    from gateway.upstreams.buzzstream import BuzzStreamAuthSettings

UPSTREAM = "buzzstream"  # buzzstream.NAME (that module imports this one)
PREFIX = "oauth1:buzzstream:"
USER_KEY = PREFIX + "user:"
PENDING_KEY = PREFIX + "pending:"
PENDING_TTL = onboarding.PENDING_TTL  # seconds a user has to approve at BuzzStream


async def load_user_token(
    store: KeyValueStore, user: str, masker: SecretMasker | None = None
) -> tuple[str, str] | None:
    found = await onboarding.load_user(store, PREFIX, user, "token", "token_secret", masker=masker)
    return None if found is None else (found[0], found[1])


async def save_user_token(store: KeyValueStore, user: str, token: str, secret: str) -> None:
    await onboarding.save_user(store, PREFIX, user, {"token": token, "token_secret": secret})


async def save_pending(
    store: KeyValueStore,
    request_token: str,
    user: str,
    secret: str,
    *,
    replace: bool = False,
    caller: str = "",
) -> None:
    pending = Pending(user, secret, replace, caller)
    await onboarding.save_pending(store, PREFIX, request_token, pending)


async def take_pending(
    store: KeyValueStore, request_token: str, masker: SecretMasker | None = None
) -> Pending | None:
    """The onboarding a request token started, usable once."""
    return await onboarding.take_pending(store, PREFIX, request_token, masker)


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


def parse_token_reply(
    reply: UpstreamReply, step: str, upstream: str, masker: SecretMasker | None = None
) -> tuple[str, str]:
    """``oauth_token`` and ``oauth_token_secret`` of a form-encoded reply (§2.1, §2.3);
    the secret remembered by ``masker`` (the routes remember it from the onboarding's
    results: ``grant.secret``, the credential's last value)."""
    if reply.status in (400, 401, 403):
        raise UpstreamAuthFailed(
            f"{upstream} refused the {step} (HTTP {reply.status})", upstream=upstream
        )
    fields = dict(parse_qsl((reply.body or b"").decode("utf-8", "replace")))
    token, secret = fields.get("oauth_token"), fields.get("oauth_token_secret")
    if masker is not None:
        masker.remember(secret)
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


# The onboarding the generic routes drive (gateway/upstreams/onboarding.py).


def _consumer(settings: BuzzStreamAuthSettings) -> OAuth1Credentials:
    return OAuth1Credentials(settings.consumer_key, settings.consumer_secret.reveal())


def _first_call(settings: BuzzStreamAuthSettings, site: Site) -> TokenCall:
    """§2.1, signed by the consumer alone like a 2-legged call: the same quota account."""
    path = settings.request_token_path

    def build(fresh: Fresh) -> OutboundRequest:
        return request_token_request(
            _consumer(settings), site.host_url, site.base_path + path, site.callback_url,
            nonce=fresh.nonce, timestamp=fresh.timestamp,
        )  # fmt: skip

    return TokenCall(path, settings.consumer_key, build)


def _approval(
    settings: BuzzStreamAuthSettings, site: Site, reply: UpstreamReply | None, fresh: Fresh
) -> Approval:
    if reply is None:  # never: the request token call always comes first
        raise UpstreamError(f"{UPSTREAM} gave no request token", upstream=UPSTREAM)
    token, secret = parse_token_reply(reply, "request token", UPSTREAM)
    return Approval(authorize_location(site.base_url, settings.authorize_url, token), token, secret)


def _returned(query: Mapping[str, str]) -> Returned:
    token = query.get("oauth_token", "")
    verifier = query.get("oauth_verifier") or query.get("verifier") or ""
    if not PRINTABLE.match(token) or not PRINTABLE.match(verifier):
        raise InvalidRequest("oauth_token and oauth_verifier are required", upstream=UPSTREAM)
    return Returned(token, verifier)


def _token_call(
    settings: BuzzStreamAuthSettings, site: Site, pending: Pending, back: Returned
) -> TokenCall:
    """§2.3, with the request token, its secret and the verifier."""
    path = settings.access_token_path

    def build(fresh: Fresh) -> OutboundRequest:
        return access_token_request(
            _consumer(settings), site.host_url, site.base_path + path, back.handle,
            pending.secret, back.code, nonce=fresh.nonce, timestamp=fresh.timestamp,
        )  # fmt: skip

    return TokenCall(path, settings.consumer_key, build)


def _credential(reply: UpstreamReply) -> Mapping[str, str]:
    token, secret = parse_token_reply(reply, "access token", UPSTREAM)
    return {"token": token, "token_secret": secret}


def _pinned(settings: BuzzStreamAuthSettings, user: str) -> str | None:
    return f"upstreams.{UPSTREAM}.auth.users" if user in settings.users else None


ONBOARDING = Onboarding(
    title="BuzzStream",
    store_prefix=PREFIX,
    first_call=_first_call,
    approval=_approval,
    returned=_returned,
    token_call=_token_call,
    credential=_credential,
    pinned=_pinned,
)
