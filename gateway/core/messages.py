"""Value types for what the gateway sends upstream and what comes back.

They carry no sockets: the server layer turns an :class:`OutboundRequest` into
an aiohttp call and the reply into an :class:`UpstreamReply`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

Headers = tuple[tuple[str, str], ...]


def header_get(headers: Headers, name: str) -> str | None:
    lname = name.lower()
    for key, value in headers:
        if key.lower() == lname:
            return value
    return None


def header_all(headers: Headers, name: str) -> list[str]:
    lname = name.lower()
    return [value for key, value in headers if key.lower() == lname]


def header_set(headers: Headers, name: str, value: str) -> Headers:
    return headers_set(headers, ((name, value),))


def headers_set(headers: Headers, pairs: Headers) -> Headers:
    """``headers`` with each name of ``pairs`` set to its value (earlier values of
    those names dropped), in one pass; the pairs last, in their order."""
    names = {k.lower() for k, _ in pairs}
    return (*((k, v) for k, v in headers if k.lower() not in names), *pairs)


def header_drop(headers: Headers, names: Iterable[str]) -> Headers:
    drop = {n.lower() for n in names}
    return tuple((k, v) for k, v in headers if k.lower() not in drop)


@dataclass(frozen=True)
class OutboundRequest:
    """One HTTP request to an upstream.

    ``path`` and ``query`` are already percent-encoded and are sent exactly as
    they are (signing covers these bytes). ``body`` is ``None`` when the
    caller's body is streamed through unread.
    """

    method: str
    base_url: str
    path: str
    query: str = ""
    headers: Headers = ()
    body: bytes | None = None
    streamed_body: bool = False  # True: the caller's body is streamed, body is None

    @property
    def url(self) -> str:
        return self.base_url + self.path + (f"?{self.query}" if self.query else "")

    def header(self, name: str) -> str | None:
        return header_get(self.headers, name)

    def with_header(self, name: str, value: str) -> OutboundRequest:
        """A copy with ``name`` set to ``value`` (earlier values dropped). Built by the
        constructor: ``dataclasses.replace`` walks the fields and costs twice as much,
        on every signed call (tests/core/test_messages.py keeps every other field)."""
        return self.with_headers(((name, value),))

    def with_headers(self, pairs: Headers) -> OutboundRequest:
        """A copy with each name of ``pairs`` set to its value, in one pass."""
        return OutboundRequest(
            self.method,
            self.base_url,
            self.path,
            self.query,
            headers_set(self.headers, pairs),
            self.body,
            self.streamed_body,
        )

    @property
    def content_type(self) -> str:
        value = self.header("Content-Type") or ""
        return value.split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class UpstreamReply:
    """An upstream's answer. ``body`` is ``None`` when it was not read (streamed).

    ``body`` is the content as parsers see it, decoded from its
    ``Content-Encoding`` (:mod:`gateway.core.content_coding`); ``encoded_body``
    holds the bytes as they came when they differ (a compressed reply), and
    :attr:`wire_body` is what is passed on to the caller.
    """

    status: int
    headers: Headers = ()
    body: bytes | None = None
    truncated: bool = False  # the body was longer than the bound and was cut
    extra: dict[str, str] = field(default_factory=dict)
    encoded_body: bytes | None = None

    @property
    def wire_body(self) -> bytes | None:
        return self.encoded_body if self.encoded_body is not None else self.body

    def header(self, name: str) -> str | None:
        return header_get(self.headers, name)

    @property
    def content_type(self) -> str:
        value = self.header("Content-Type") or ""
        return value.split(";", 1)[0].strip().lower()
