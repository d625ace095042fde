"""OAuth 1.0a HMAC-SHA1 request signing (RFC 5849), pure: nonce and time are passed in.

Split the way RFC 5849 §3.4 is, one small function per step, so that each can
be checked against the RFC's own examples:

- :func:`protocol_parameters`   §3.1     the ``oauth_*`` parameters of one request
- :func:`request_parameters`    §3.4.1.3.1  query + protocol + form-body parameters
- :func:`base_string_uri`       §3.4.1.2 scheme, host, port, path
- :func:`signature_base_string` §3.4.1.1 ``METHOD&uri&normalized-parameters``
- :func:`hmac_sha1`             §3.4.2   the signature
- :func:`authorization_header`  §3.5.1   the ``Authorization: OAuth ...`` value
- :func:`sign`                  all of the above for one request

Percent-encoding, the base string URI's origin and HMAC come from authlib's
``authlib.oauth1.rfc5849`` helpers (no I/O); what is already parsed is not parsed
again: each name and value is encoded once per call and the encoded protocol
parameters serve both the base string and the header (authlib's
``normalize_parameters`` would encode them all again, and the header once more:
most of a signature's cost), encodings are memoized (names, keys, paths and query
values repeat from call to call), and the origin of a base URL is normalised once.
``bench``: see the commit that made it so. A form-encoded body is signed
(its parameters enter the base string); any other body is not (§3.4.1.3.1).
The caller passes a fresh nonce and timestamp for every attempt, so a replay is
signed again.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from authlib.oauth1.rfc5849.signature import hmac_sha1_signature, normalize_base_string_uri
from authlib.oauth1.rfc5849.util import escape

# RFC 5849 §3.6 percent-encoding (authlib's), memoized: consumer keys, tokens, the
# method's name, paths and query values recur; the per-call nonce and signature
# only pass through. Bounded: an LRU of short strings.
_escape = functools.lru_cache(maxsize=4096)(escape)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
Params = list[tuple[str, str]]


class UnsignableRequest(ValueError):
    """The request cannot be signed (a form body that is not UTF-8 form data)."""


@dataclass(frozen=True)
class OAuth1Credentials:
    """Client credentials, plus token credentials for 3-legged calls (RFC 5849 §1.1)."""

    consumer_key: str
    consumer_secret: str
    token: str | None = None
    token_secret: str | None = None

    def __repr__(self) -> str:
        return f"OAuth1Credentials(consumer_key={self.consumer_key!r}, token=***)"


def new_nonce() -> str:
    """A random nonce (RFC 5849 §3.3): 128 bits, URL-safe."""
    return secrets.token_hex(16)


def protocol_parameters(
    creds: OAuth1Credentials,
    nonce: str,
    timestamp: int,
    *,
    callback: str | None = None,
    verifier: str | None = None,
    version: bool = True,
) -> Params:
    """RFC 5849 §3.1: the protocol parameters (``oauth_signature`` excluded).

    ``version=False`` leaves ``oauth_version`` out, which §3.1 allows (the RFC's
    own examples in §1.2 do so).
    """
    params: Params = [
        ("oauth_consumer_key", creds.consumer_key),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", str(timestamp)),
        ("oauth_nonce", nonce),
    ]
    if creds.token:
        params.append(("oauth_token", creds.token))
    if callback is not None:
        params.append(("oauth_callback", callback))
    if verifier is not None:
        params.append(("oauth_verifier", verifier))
    if version:
        params.append(("oauth_version", "1.0"))
    return params


def _form_pairs(text: str) -> Params:
    return parse_qsl(text, keep_blank_values=True)


def request_parameters(
    raw_query: str, oauth_params: Iterable[tuple[str, str]], content_type: str, body: bytes
) -> Params:
    """RFC 5849 §3.4.1.3.1: the parameters the signature covers.

    The query and a form-encoded body are decoded as
    ``application/x-www-form-urlencoded`` (``+`` is a space); any other body is
    not signed. Raises :class:`UnsignableRequest` for a form body that is not UTF-8.
    """
    pairs = _form_pairs(raw_query)
    pairs += [(k, v) for k, v in oauth_params if k not in ("realm", "oauth_signature")]
    if content_type.split(";", 1)[0].strip().lower() == FORM_CONTENT_TYPE and body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsignableRequest("the form body is not UTF-8") from None
        pairs += _form_pairs(text)
    return pairs


def base_string_uri(url: str) -> str:
    """RFC 5849 §3.4.1.2: lowercase scheme and host, default port dropped, no query.

    The path is kept exactly as sent, ``;params`` included: authlib's
    normaliser (``urlparse``/``urlunparse``) drops an empty one, so
    ``/websites;`` would be signed as ``/websites`` while ``/websites;`` is
    sent. Only the scheme and authority go through it.
    """
    parts = urlsplit(url)
    return _origin(parts.scheme, parts.netloc) + (parts.path or "/")


@functools.lru_cache(maxsize=256)
def _origin(scheme: str, netloc: str) -> str:
    """The normalised ``scheme://host[:port]`` of a base URL (a few per upstream)."""
    return str(normalize_base_string_uri(urlunsplit((scheme, netloc, "/", "", ""))))[:-1]


def normalized_parameters(params: Iterable[tuple[str, str]]) -> str:
    """RFC 5849 §3.4.1.3.2, as authlib's ``normalize_parameters`` does it: every
    name and value encoded (§3.6), the pairs sorted by name then value, joined
    ``name=value`` with ``&`` (tests/core/test_oauth1.py checks the two agree)."""
    return "&".join(f"{k}={v}" for k, v in sorted((_escape(k), _escape(v)) for k, v in params))


def signature_base_string(method: str, uri: str, params: Iterable[tuple[str, str]]) -> str:
    """RFC 5849 §3.4.1.1: ``enc(METHOD)&enc(base string URI)&enc(normalized params)``.

    ``params`` are decoded values; §3.4.1.3.2 normalisation encodes and sorts them.
    """
    return "&".join((_escape(method.upper()), _escape(uri), escape(normalized_parameters(params))))


def hmac_sha1(base_string: str, consumer_secret: str, token_secret: str | None) -> str:
    """RFC 5849 §3.4.2: base64 HMAC-SHA1 keyed ``enc(consumer_secret)&enc(token_secret)``."""
    return str(hmac_sha1_signature(base_string, consumer_secret, token_secret or ""))


def authorization_header(params: Sequence[tuple[str, str]], realm: str | None = None) -> str:
    """RFC 5849 §3.5.1: ``OAuth name="enc(value)", ...`` (signature included)."""
    parts = [f'realm="{realm}"'] if realm is not None else []
    parts += [f'{_escape(k)}="{_escape(v)}"' for k, v in params]
    return "OAuth " + ", ".join(parts)


@dataclass(frozen=True)
class SignedParts:
    """What signing produced, for tests and for the ``Authorization`` header."""

    base_string: str
    signature: str
    header: str


def sign(
    method: str,
    url: str,
    raw_query: str,
    content_type: str,
    body: bytes,
    creds: OAuth1Credentials,
    *,
    nonce: str,
    timestamp: int,
    callback: str | None = None,
    verifier: str | None = None,
    version: bool = True,
) -> SignedParts:
    """Sign one request. ``url`` is scheme, host and (percent-encoded) path, no query."""
    oauth = protocol_parameters(
        creds, nonce, timestamp, callback=callback, verifier=verifier, version=version
    )
    params = request_parameters(raw_query, oauth, content_type, body)
    base = signature_base_string(method, base_string_uri(url), params)
    signature = hmac_sha1(base, creds.consumer_secret, creds.token_secret)
    header = authorization_header([*oauth, ("oauth_signature", signature)])
    return SignedParts(base_string=base, signature=signature, header=header)
