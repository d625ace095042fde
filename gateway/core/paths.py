"""Path safety: the target is never anything but the configured base URL (docs/contract.md §1).

The gateway receives ``/{upstream}/{path}`` and forwards ``{path}`` below the
upstream's base path. :func:`safe_subpath` takes the *raw* (still
percent-encoded) path and either returns a path that provably stays below the
base, or raises :class:`UnsafePath`.

Refused outright (400 ``invalid_request``): dot segments (``..``, ``.``, and
their encoded forms ``%2e``), empty segments (``//host``), encoded slashes and
backslashes (``%2f``, ``%5c``), a raw backslash, ``@`` (userinfo confusion),
an absolute URL (``scheme:``), encoded control characters, double-encoded or
overlong-UTF-8 dots and slashes, and dot segments hidden behind ``;params``.
Refusing is clearer than silently rewriting: a caller that sends these has a
bug or is probing.
"""

from __future__ import annotations

import re

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_ALLOWED = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:%]*$")
_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODED_CONTROL = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])")
_DOUBLE_ENCODED = re.compile(r"%25(?:2[eEfF]|5[cC])")
_OVERLONG = re.compile(r"%[cC][01]")
# Unreserved characters only, segments that do not start with a dot (so no dot
# segment) and are not empty (but the last): nothing any check refuses.
_PLAIN = re.compile(r"(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*/)*(?:[A-Za-z0-9_~-][A-Za-z0-9._~-]*)?\Z")


class UnsafePath(ValueError):
    """The path could leave the configured base path."""


def _decode_unreserved(segment: str) -> str:
    # Enough decoding to see what a server would see for dot segments.
    return re.sub(r"%2[eE]", ".", segment)


def safe_subpath(raw: str) -> str:
    """Validate the raw path after ``/{upstream}`` and return it, prefixed with ``/``.

    >>> safe_subpath("api/v1/documents")
    '/api/v1/documents'
    """
    if _PLAIN.match(raw):  # the common case, which passes every check below
        return "/" + raw
    return _checked_subpath(raw)


def _checked_subpath(raw: str) -> str:
    """:func:`safe_subpath`'s every check, one by one."""
    if raw == "":
        return "/"
    if "\\" in raw or "@" in raw:
        raise UnsafePath("backslash or '@' in path")
    if _SCHEME.match(raw) or raw.startswith("/"):
        raise UnsafePath("absolute URL or '//' in path")
    if _PCT.search(raw):
        raise UnsafePath("malformed percent-encoding")
    lowered = raw.lower()
    for encoded in ("%2f", "%5c", "%40"):
        if encoded in lowered:
            raise UnsafePath("encoded slash, backslash or '@' in path")
    if _ENCODED_CONTROL.search(raw):
        raise UnsafePath("encoded control character in path")
    if _DOUBLE_ENCODED.search(raw) or _OVERLONG.search(raw):
        # Harmless to a strict server, a traversal to one that decodes twice or
        # accepts overlong UTF-8: never legitimate, so refused.
        raise UnsafePath("double-encoded or overlong dot, slash or backslash in path")
    segments = raw.split("/")
    for index, segment in enumerate(segments):
        if segment == "" and index != len(segments) - 1:
            raise UnsafePath("empty path segment")
        # A ";params" suffix does not hide a dot segment (Tomcat reads "..;x" as "..").
        if _decode_unreserved(segment.split(";", 1)[0]) in (".", ".."):
            raise UnsafePath("dot segment in path")
        if not _ALLOWED.match(segment):
            raise UnsafePath("character not allowed in path")
    return "/" + raw


def join_base(base_path: str, subpath: str) -> str:
    """Join the base URL's path and a safe subpath with exactly one slash."""
    return base_path.rstrip("/") + subpath
