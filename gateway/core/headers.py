"""Which caller headers are forwarded upstream, and which reply headers come back.

RFC 9110 §7.6.1: hop-by-hop fields (and any field named in ``Connection``) are
for one connection only and are never forwarded. The caller's own credentials
(``Authorization``, ``Cookie``, ``Proxy-*``) never leave the gateway, and the
gateway-only ``X-Gateway-*`` headers are consumed here. Headers that make
some upstream frameworks execute another method, path or host
(``X-HTTP-Method-Override``, ``X-Original-URL``, ``X-Rewrite-URL``,
``X-Forwarded-Host``, ``Forwarded``...) are never forwarded either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from gateway.core.messages import Headers

# X-Gateway-User (and a caller's X-Request-Id, kept when it matches): 1-128
# printable US-ASCII characters, no space. The one definition of the rule: the
# middleware, the onboarding routes and the callers' config all use it.
GATEWAY_USER = re.compile(r"^[\x21-\x7e]{1,128}$")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# x-request-id is re-added by the gateway itself (kept or made), exactly once.
CALLER_ONLY = frozenset(
    {"authorization", "cookie", "host", "content-length", "expect", "x-request-id"}
)
# Headers with which a framework or proxy upstream would execute another method,
# path or host than the one the gateway routed, checked and counted.
REWRITING = frozenset(
    {
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-url",
        "x-rewrite-url",
        "x-original-method",
        "x-forwarded-host",
        "x-forwarded-server",
        "x-host",
        "forwarded",
    }
)


def _connection_names(value: str) -> Iterator[str]:
    """The field names one ``Connection`` value lists, lowered."""
    return (token.strip().lower() for token in value.split(",") if token.strip())


def connection_tokens(headers: Iterable[tuple[str, str]]) -> set[str]:
    names: set[str] = set()
    for key, value in headers:
        if key.lower() == "connection":
            names.update(_connection_names(value))
    return names


NEVER_FORWARDED = HOP_BY_HOP | CALLER_ONLY | REWRITING


def forwardable_request_headers(headers: Iterable[tuple[str, str]]) -> Headers:
    """The caller's headers that go upstream: not hop-by-hop (nor named in
    ``Connection``), not the caller's own credentials, not rewriting, not
    ``Proxy-*`` or ``X-Gateway-*``. Each name is lowered once."""
    items = [(key, key.lower(), value) for key, value in headers]
    named: set[str] = set()
    for _, lower, value in items:
        if lower == "connection":
            named.update(_connection_names(value))
    return tuple(
        (key, value)
        for key, lower, value in items
        if lower not in NEVER_FORWARDED
        and lower not in named
        and not lower.startswith(("proxy-", "x-gateway-"))
    )


# Reply headers the gateway sets itself or that describe the upstream connection.
REPLY_DROP = frozenset({"set-cookie", "server", "date"})


def forwardable_reply_headers(headers: Iterable[tuple[str, str]]) -> Headers:
    items = list(headers)
    named = connection_tokens(items)
    return tuple(
        (k, v)
        for k, v in items
        if k.lower() not in HOP_BY_HOP and k.lower() not in REPLY_DROP and k.lower() not in named
    )
