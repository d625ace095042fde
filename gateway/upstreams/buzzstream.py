"""BuzzStream API v1.0: OAuth 1.0a HMAC-SHA1 (RFC 5849), 2- and 3-legged.

Auth (docs/upstreams.md § buzzstream): every attempt is signed afresh (new nonce
and timestamp) by :func:`gateway.core.oauth1.sign` into an ``Authorization:
OAuth`` header. The query is signed; a form-encoded body is signed (so it is
buffered); any other body is not signed and streams through.

Credentials for a call, in this order (docs/auth.md):

1. ``X-Gateway-User`` listed under ``auth.users`` in the config: that token pair;
2. ``X-Gateway-User`` with a token pair in the token store (3-legged onboarding,
   :data:`gateway.upstreams.buzzstream_tokens.ONBOARDING`): that pair;
3. otherwise the consumer credentials alone (2-legged).

The quota key is ``user:<id>`` for a user's token, else the consumer key
(docs/contract.md §2). BuzzStream tokens do not expire, so nothing is ever renewed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from gateway.config_reader import Secret, Section
from gateway.core.messages import OutboundRequest
from gateway.core.oauth1 import OAuth1Credentials, UnsignableRequest, new_nonce, sign
from gateway.errors import InvalidRequest
from gateway.upstreams.base import AuthIO, Flow, KeyValueStore, UpstreamSpec
from gateway.upstreams.buzzstream_errors import parse_error
from gateway.upstreams.buzzstream_tokens import ONBOARDING, load_user_token

NAME = "buzzstream"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class TokenPair:
    token: str
    token_secret: Secret


@dataclass(frozen=True)
class BuzzStreamAuthSettings:
    consumer_key: str
    consumer_secret: Secret
    request_token_path: str = "/requestToken"
    access_token_path: str = "/accessToken"
    authorize_url: str = "/oauth_verification"  # absolute, or below base_url
    users: Mapping[str, TokenPair] = field(default_factory=dict)


def parse_auth(section: Section) -> BuzzStreamAuthSettings:
    users = section.each(
        "users",
        lambda sub: TokenPair(token=sub.text("token"), token_secret=sub.secret("token_secret")),
    )
    settings = BuzzStreamAuthSettings(
        consumer_key=section.text("consumer_key"),
        consumer_secret=section.secret("consumer_secret"),
        request_token_path=section.text("request_token_path", "/requestToken"),
        access_token_path=section.text("access_token_path", "/accessToken"),
        authorize_url=section.text("authorize_url", "/oauth_verification"),
        users=users,
    )
    section.done()
    return settings


def is_form(request: OutboundRequest) -> bool:
    """A form-encoded body: its parameters are signed, and checked for ``oauth_*``."""
    return request.content_type == FORM


@dataclass(frozen=True, slots=True)
class Signer:
    """The OAuth 1.0a credentials chosen for one call and its quota key."""

    creds: OAuth1Credentials
    account: str
    clock: Callable[[], float]
    nonce: Callable[[], str]

    def __repr__(self) -> str:
        return f"Signer(account={self.account!r})"

    def needs_body(self, request: OutboundRequest) -> bool:
        return is_form(request)  # its parameters are signed

    def requires_reply_body(self, status: int) -> bool:
        return False

    def signed(self, request: OutboundRequest) -> OutboundRequest:
        """Signed afresh: a new nonce and timestamp for every attempt."""
        body = request.body if request.content_type == FORM and request.body else b""
        try:
            signed = sign(
                request.method,
                request.base_url + request.path,
                request.query,
                request.content_type,
                body,
                self.creds,
                nonce=self.nonce(),
                timestamp=int(self.clock()),
            )
        except UnsignableRequest as exc:
            raise InvalidRequest(f"cannot sign the request: {exc}", upstream=NAME) from None
        return request.with_header("Authorization", signed.header)

    async def flow(self, request: OutboundRequest) -> Flow:
        yield self.signed(request)  # access tokens never expire: a 401 is final


class OAuth1Auth:
    def __init__(
        self,
        settings: BuzzStreamAuthSettings,
        io: AuthIO | None = None,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = new_nonce,
    ) -> None:
        self.settings = settings
        self.io = io or AuthIO(NAME)
        self._clock = clock
        self._nonce = nonce
        self.consumer = OAuth1Credentials(settings.consumer_key, settings.consumer_secret.reveal())
        self._shared = Signer(self.consumer, settings.consumer_key, clock, nonce)

    def for_user(self, user: str, token: str, token_secret: str) -> Signer:
        creds = OAuth1Credentials(
            self.consumer.consumer_key, self.consumer.consumer_secret, token, token_secret
        )
        return Signer(creds, f"user:{user}", self._clock, self._nonce)

    async def bind(self, user: str | None, store: KeyValueStore | None) -> Signer:
        if not user:
            return self._shared
        pinned = self.settings.users.get(user)
        if pinned is not None:
            return self.for_user(user, pinned.token, pinned.token_secret.reveal())
        if store is not None:
            stored = await load_user_token(store, user, self.io.masker)
            if stored is not None:
                return self.for_user(user, *stored)
        return self._shared


def refuse_protocol_parameters(request: OutboundRequest) -> None:
    """The caller's own ``oauth_*`` query or form parameters are refused (400).

    The gateway signs every call itself; a caller's ``oauth_*`` parameters would
    be signed over and sent next to the gateway's, the duplicated protocol
    parameters that RFC 5849 §3.2 servers refuse. Only names are reported.
    """
    names = [k for k, _ in parse_qsl(request.query, keep_blank_values=True)]
    if request.content_type == FORM and request.body:
        text = request.body.decode("utf-8", "replace")
        names += [k for k, _ in parse_qsl(text, keep_blank_values=True)]
    found = sorted({n[:40] for n in names if n.startswith("oauth_")})
    if found:
        raise InvalidRequest(
            "the gateway signs BuzzStream calls itself: remove the OAuth protocol"
            f" parameter(s) {', '.join(found[:5])} from the query or form body",
            upstream=NAME,
        )


SPEC = UpstreamSpec(
    name=NAME,
    parse_auth=parse_auth,
    build_auth=OAuth1Auth,
    parse_error=parse_error,
    links_in_body=True,  # every resource is an absolute URI (upstreams.md § buzzstream)
    check_request=refuse_protocol_parameters,
    check_needs_body=is_form,  # read before the check, whichever credential binds
    onboarding=ONBOARDING,  # /oauth/buzzstream/start|callback
    default_limits=(
        {"name": "per_account", "match": "*", "limit": 5, "period": "1s", "burst": 1,
         "margin": "100ms", "on_exceed": "delay", "max_delay": "10s"},
    ),
)  # fmt: skip
