"""Links to the upstream rewritten to the gateway, so that following one goes through it.

An upstream names its resources by absolute URLs under its own base URL
(BuzzStream: ``https://api.buzzstream.com/v1/websites/1`` in list and detail
bodies), and any upstream may answer ``Location`` or ``Content-Location``. A
caller that follows such a link as it is would bypass the gateway and reach
the upstream with no credentials. :class:`LinkMap` maps them to the gateway's
URL for that upstream (README, "Links"):

- :meth:`LinkMap.url`: an absolute URL under the upstream's root, or an
  absolute path under it (``/v1/...``, in headers only), to the gateway;
- :func:`rewrite_json`: every JSON string *value* that is an absolute URL under
  the root, everything else byte for byte (keys, numbers, spacing, escapes);
- :func:`relink_headers` and :func:`relink_body` apply them to a reply.

Pure: no I/O, standard library only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from types import MappingProxyType
from urllib.parse import urlsplit

from gateway.core.messages import Headers, UpstreamReply, header_drop, header_get, header_set

DEFAULT_PORTS = MappingProxyType({"http": 80, "https": 443})
# RFC 9110 §7.2: Host = uri-host [ ":" port ], a DNS name or IPv4 address, or an
# IP-literal in brackets; nothing else may stand in a URL's authority.
_HOST = re.compile(r"(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def request_origin(scheme: str, host: str | None, default: str) -> str:
    """``scheme://host`` as the caller reached the gateway, or ``default`` when the
    request named no usable ``Host`` (none in HTTP/1.0, empty, or not a host and
    port: a link built from it would lead nowhere, or somewhere else)."""
    if host and _HOST.fullmatch(host):
        return f"{scheme}://{host}"
    return default


def _origin(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port), lower-cased, with the default port filled in."""
    scheme = scheme.lower()
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if not host or parts.username is not None or parts.password is not None:
        return None
    return scheme, host, port if port is not None else DEFAULT_PORTS.get(scheme, 0)


def _under(path: str, root: str) -> str | None:
    """What follows ``root`` in ``path`` on a segment boundary, else None."""
    if not path.startswith(root):
        return None
    rest = path[len(root) :]
    return rest if rest == "" or rest.startswith("/") else None


@dataclass(frozen=True)
class LinkMap:
    """``upstream``: the upstream's own root (its base URL plus any path the gateway
    adds, e.g. StreamOne's ``/api``); ``gateway``: the gateway's URL for that
    upstream (``<public URL>/<upstream name>``). Neither ends with ``/``."""

    upstream: str
    gateway: str

    def url(self, value: str, *, paths: bool = True) -> str | None:
        """The gateway's URL for ``value``, or None when it is not under the root.

        ``paths``: also map an absolute path (``/v1/websites/3``, a reference
        resolved against the upstream's host) to the gateway's path.
        """
        root = urlsplit(self.upstream)
        if paths and value.startswith("/") and not value.startswith("//"):
            rest = _under(value, root.path)
            if rest is None:
                return None
            return urlsplit(self.gateway).path + rest
        if any(ch <= " " or ch == "\x7f" for ch in value):
            return None  # not a URL as sent (urlsplit would quietly drop some)
        try:
            parts = urlsplit(value)
        except ValueError:
            return None
        if parts.scheme.lower() not in DEFAULT_PORTS or not parts.netloc:
            return None
        if _origin(parts.scheme, parts.netloc) != _origin(root.scheme, root.netloc):
            return None
        rest = _under(parts.path, root.path)
        if rest is None:
            return None
        tail = value[value.index(parts.netloc) + len(parts.netloc) + len(parts.path) :]
        return self.gateway + rest + tail


# A JSON string literal (RFC 8259 §7); in valid JSON no quote stands outside one.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_KEY = re.compile(r"\s*:")


def rewrite_json(body: bytes, links: LinkMap) -> bytes | None:
    """``body`` with its string values under the upstream's root pointing at the
    gateway, or None when it is not UTF-8 JSON or names no such URL.

    Only the rewritten strings change; the rest of the document stays byte for
    byte as the upstream wrote it.
    """
    host = urlsplit(links.upstream).hostname or ""
    if not host or host.encode() not in body.lower():
        return None
    try:
        text = body.decode("utf-8")
        json.loads(text)
    except ValueError:
        return None
    changed = False

    def swap(match: re.Match[str]) -> str:
        nonlocal changed
        if _KEY.match(text, match.end()):
            return match.group(0)
        value = json.loads(match.group(0))
        new = links.url(value, paths=False)
        if new is None:
            return match.group(0)
        changed = True
        return json.dumps(new, ensure_ascii=False)

    out = _STRING.sub(swap, text)
    return out.encode("utf-8") if changed else None


LINK_HEADERS = frozenset({"location", "content-location"})
# Headers that describe the exact bytes of a body: wrong once it is rewritten.
BYTE_HEADERS = ("Content-Encoding", "Content-Length", "Content-MD5", "Digest", "Content-Digest",
                "Repr-Digest")  # fmt: skip


def relink_headers(headers: Headers, links: LinkMap) -> Headers:
    """``Location`` and ``Content-Location`` under the upstream's root, to the gateway."""
    return tuple((k, (links.url(v) or v) if k.lower() in LINK_HEADERS else v) for k, v in headers)


def is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def relink_body(reply: UpstreamReply, links: LinkMap) -> UpstreamReply:
    """A read, whole JSON body with its upstream URLs pointing at the gateway.

    A rewritten body is sent as it now is (no ``Content-Encoding``, its own
    length); a strong ``ETag`` becomes weak (RFC 9110 §8.8.3: the bytes
    differ, the meaning does not). Anything else comes back unchanged.
    """
    if reply.body is None or reply.truncated or not is_json(reply.content_type):
        return reply
    body = rewrite_json(reply.body, links)
    if body is None:
        return reply
    headers = header_drop(reply.headers, BYTE_HEADERS)
    etag = header_get(headers, "ETag")
    if etag is not None and not etag.startswith("W/"):
        headers = header_set(headers, "ETag", "W/" + etag)
    return replace(reply, headers=headers, body=body, encoded_body=None)
