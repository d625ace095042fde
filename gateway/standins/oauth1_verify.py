"""OAuth 1.0a HMAC-SHA1 verification for the BuzzStream stand-in, from RFC 5849.

Written from the RFC with the standard library only, so that it is an
independent check of the gateway's signing code (which it must never import).

Each step is a small pure function naming its RFC section:

- :func:`parse_authorization_header`  §3.5.1  the ``Authorization: OAuth`` header
- :func:`request_parameters`          §3.4.1.3.1  query + header + form body
- :func:`base_string_uri`             §3.4.1.2
- :func:`normalize_parameters`        §3.4.1.3.2
- :func:`signature_base_string`       §3.4.1.1
- :func:`hmac_sha1_signature`         §3.4.2
- :class:`NonceCache`                 §3.3  a nonce is used once per timestamp
- :func:`authenticate`                §3.2  all of the above, plus the token checks

Only :func:`authenticate` and :class:`TokenStore` hold state; nothing here does I/O.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
REQUIRED_PARAMS = (
    "oauth_consumer_key",
    "oauth_signature_method",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
)


class OAuthRefused(Exception):
    """The request is refused; ``stat`` names the counter to bump (if any)."""

    def __init__(self, status: int, message: str, stat: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.stat = stat


def percent_encode(value: str) -> str:
    """RFC 5849 §3.6: UTF-8, then escape everything but ``A-Za-z0-9-._~``."""
    # quote() never escapes ALPHA / DIGIT / "-._~"; safe="" escapes the rest.
    return quote(value, safe="")


def parse_authorization_header(header: str) -> dict[str, str]:
    """RFC 5849 §3.5.1: ``OAuth name="value", ...`` with percent-encoded values.

    Raises :class:`OAuthRefused` (401 when the scheme is absent, 400 when malformed
    or a parameter is duplicated, RFC 5849 §3.2).
    """
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "oauth":
        raise OAuthRefused(401, "Missing OAuth Authorization header")
    params: dict[str, str] = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        name, eq, quoted = part.partition("=")
        quoted = quoted.strip()
        if not eq or len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
            raise OAuthRefused(400, f"Malformed OAuth header parameter: {part[:40]}")
        name = unquote(name.strip())
        if name in params:
            raise OAuthRefused(400, f"Duplicated OAuth parameter: {name}")
        params[name] = unquote(quoted[1:-1])
    return params


def check_protocol_parameters(params: dict[str, str]) -> None:
    """RFC 5849 §3.1 / §3.2: the required parameters, HMAC-SHA1 and version 1.0 only."""
    for name in REQUIRED_PARAMS:
        if not params.get(name):
            raise OAuthRefused(400, f"Missing OAuth parameter: {name}")
    if params["oauth_signature_method"] != "HMAC-SHA1":
        raise OAuthRefused(400, "Unsupported signature method")
    if params.get("oauth_version", "1.0") != "1.0":
        raise OAuthRefused(400, "Unsupported OAuth version")


def request_parameters(
    raw_query: str,
    header_params: dict[str, str],
    content_type: str,
    body: bytes,
) -> list[tuple[str, str]]:
    """RFC 5849 §3.4.1.3.1: the parameters covered by the signature.

    The query component and a form-encoded body are decoded as
    ``application/x-www-form-urlencoded``; the header contributes every protocol
    parameter except ``realm`` and ``oauth_signature``. Any other body is not signed.
    """
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    pairs += [(k, v) for k, v in header_params.items() if k not in ("realm", "oauth_signature")]
    if content_type.split(";")[0].strip().lower() == FORM_CONTENT_TYPE and body:
        pairs += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return pairs


def base_string_uri(scheme: str, host: str, port: int | None, raw_path: str) -> str:
    """RFC 5849 §3.4.1.2: lowercase scheme and host, default port omitted, no query."""
    scheme = scheme.lower()
    host = host.lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    default_port = {"http": 80, "https": 443}.get(scheme)
    authority = host if port is None or port == default_port else f"{host}:{port}"
    return f"{scheme}://{authority}{raw_path or '/'}"


def normalize_parameters(pairs: Iterable[tuple[str, str]]) -> str:
    """RFC 5849 §3.4.1.3.2: encode, sort by name then value, join with ``=`` and ``&``."""
    encoded = sorted((percent_encode(k), percent_encode(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def signature_base_string(method: str, uri: str, pairs: Iterable[tuple[str, str]]) -> str:
    """RFC 5849 §3.4.1.1: ``METHOD&enc(uri)&enc(normalized parameters)``."""
    return "&".join(
        (
            percent_encode(method.upper()),
            percent_encode(uri),
            percent_encode(normalize_parameters(pairs)),
        )
    )


def hmac_sha1_signature(base_string: str, consumer_secret: str, token_secret: str | None) -> str:
    """RFC 5849 §3.4.2: base64 HMAC-SHA1 keyed ``enc(consumer)&enc(token)``."""
    key = f"{percent_encode(consumer_secret)}&{percent_encode(token_secret or '')}"
    digest = hmac.new(key.encode(), base_string.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_matches(expected: str, received: str) -> bool:
    return hmac.compare_digest(expected.encode(), received.encode())


@dataclass(frozen=True, order=True)
class NonceKey:
    consumer: str
    token: str
    timestamp: str
    nonce: str


class NonceCache:
    """RFC 5849 §3.3: refuse a (consumer, token, timestamp, nonce) seen before.

    A nonce is remembered for as long as its timestamp can still be accepted.
    """

    def __init__(self) -> None:
        self._seen: set[NonceKey] = set()
        self._expiry: list[tuple[float, NonceKey]] = []  # a heap, soonest first

    def use(self, key: NonceKey, now: float, window: float) -> bool:
        """Remember ``key``; False when it was already used."""
        while self._expiry and self._expiry[0][0] < now:
            self._seen.discard(heapq.heappop(self._expiry)[1])
        if key in self._seen:
            return False
        self._seen.add(key)
        heapq.heappush(self._expiry, (now + 2 * window, key))
        return True


@dataclass
class RequestToken:
    """Temporary credentials (RFC 5849 §2.1), authorized later by a user (§2.2)."""

    token: str
    secret: str
    consumer: str
    callback: str
    user: str | None = None
    verifier: str | None = None


@dataclass(frozen=True)
class AccessToken:
    """Token credentials (RFC 5849 §2.3), bound to one user; they never expire."""

    token: str
    secret: str
    consumer: str
    user: str


class TokenStore:
    """The stand-in's credentials and used nonces."""

    def __init__(self) -> None:
        self.request_tokens: dict[str, RequestToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.nonces = NonceCache()

    def new_request_token(self, consumer: str, callback: str) -> RequestToken:
        token = RequestToken(secrets.token_hex(12), secrets.token_hex(16), consumer, callback)
        self.request_tokens[token.token] = token
        return token

    def exchange(self, request_token: RequestToken) -> AccessToken:
        """Swap an authorized request token (used once) for an access token."""
        self.request_tokens.pop(request_token.token, None)
        assert request_token.user is not None
        access = AccessToken(
            secrets.token_hex(12), secrets.token_hex(16), request_token.consumer, request_token.user
        )
        self.access_tokens[access.token] = access
        return access


@dataclass(frozen=True)
class SignedRequest:
    """What the verifier needs from an HTTP request, as received."""

    method: str
    uri: str  # the base string URI, see base_string_uri()
    raw_query: str
    authorization: str
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Caller:
    consumer: str
    principal: str  # the user of an access token, else the consumer key
    params: dict[str, str]  # the protocol parameters, decoded
    request_token: RequestToken | None = None


def authenticate(
    req: SignedRequest,
    consumers: dict[str, str],
    window: float,
    tokens: TokenStore,
    kind: str,
    now: float,
) -> Caller:
    """Verify ``req`` or raise :class:`OAuthRefused`.

    ``kind`` is ``consumer`` (temporary credential request: no token), ``request``
    (token request: an authorized request token plus ``oauth_verifier``) or
    ``access`` (a resource call: an access token, or none for 2-legged calls).
    """
    params = parse_authorization_header(req.authorization)
    check_protocol_parameters(params)
    consumer = params["oauth_consumer_key"]
    if consumer not in consumers:
        raise OAuthRefused(401, "Unknown consumer key")
    token = params.get("oauth_token", "")
    principal, token_secret, request_token = consumer, None, None
    if kind == "request":
        request_token = tokens.request_tokens.get(token)
        if request_token is None or request_token.consumer != consumer:
            raise OAuthRefused(401, "Unknown token")
        token_secret = request_token.secret
    elif token:
        access = tokens.access_tokens.get(token) if kind == "access" else None
        if access is None or access.consumer != consumer:
            raise OAuthRefused(401, "Unknown token")
        principal, token_secret = access.user, access.secret
    pairs = request_parameters(req.raw_query, params, req.content_type, req.body)
    sent = [k for k, _ in pairs if k.startswith("oauth_")]
    for name in sent:
        if sent.count(name) > 1:  # §3.2: in the header and the query or body too
            raise OAuthRefused(400, f"Duplicated OAuth parameter: {name}")
    expected = hmac_sha1_signature(
        signature_base_string(req.method, req.uri, pairs), consumers[consumer], token_secret
    )
    if not signature_matches(expected, params["oauth_signature"]):
        raise OAuthRefused(401, "Invalid signature", "signature_invalid")
    timestamp = params["oauth_timestamp"]
    if not timestamp.isdigit() or abs(now - int(timestamp)) > window:
        raise OAuthRefused(401, "Timestamp out of range", "timestamp_invalid")
    if not tokens.nonces.use(
        NonceKey(consumer, token, timestamp, params["oauth_nonce"]), now, window
    ):
        raise OAuthRefused(401, "Nonce already used", "nonce_reused")
    if request_token is not None:
        if request_token.verifier is None:
            raise OAuthRefused(401, "Request token not authorized")
        if not signature_matches(request_token.verifier, params.get("oauth_verifier", "")):
            raise OAuthRefused(401, "Invalid verifier")
    return Caller(consumer, principal, params, request_token)
