"""Content codings (RFC 9110 §8.4, §12.5.3): what to ask upstreams for, and bounded decoding.

The gateway reads some reply bodies before passing them on: error bodies (to
map them), the 200s of upstreams that hide errors in them, and the bodies an
auth needs to see a rejected credential (``token_expired``, StreamOne 282).
Every common client sends ``Accept-Encoding: gzip, deflate``, so those bodies
usually come compressed. The policy (docs/errors.md, "Compressed replies"):

- :func:`upstream_accept_encoding`: upstream, the gateway asks only for codings
  that both the caller accepts and the gateway can decode (gzip, deflate), else
  ``identity``. A body passed through untouched is then one the caller can
  decode, and a body the gateway must read is one it can decode.
- :func:`decode_bounded`: a body is decoded for inspection into at most
  ``limit`` bytes, never more, whatever its size on the wire: a
  decompression bomb stops at the bound (zlib's ``max_length``).

Pure: no I/O, standard library only.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from types import MappingProxyType

# What the gateway can decode, in the order it prefers them at equal q-values.
DECODABLE = ("gzip", "deflate")
_ALIASES = MappingProxyType({"x-gzip": "gzip"})


def _qvalue(params: list[str]) -> float:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def accepted_codings(accept_encoding: str | None) -> dict[str, float]:
    """RFC 9110 §12.5.3: each listed coding (lower-cased, aliases folded) and its q-value."""
    found: dict[str, float] = {}
    for item in (accept_encoding or "").split(","):
        name, *params = (part.strip() for part in item.split(";"))
        if not name:
            continue
        name = name.lower()
        name = _ALIASES.get(name, name)
        found[name] = max(found.get(name, 0.0), _qvalue(params))
    return found


@functools.lru_cache(maxsize=256)  # callers send few distinct values; pure, so memoized
def upstream_accept_encoding(accept_encoding: str | None) -> str:
    """The ``Accept-Encoding`` to send upstream for a caller's ``Accept-Encoding``.

    The codings of :data:`DECODABLE` the caller accepts (named, or through
    ``*``) with a q-value above 0, best first; ``identity`` when there are none
    (no header at all included: clients that send none, curl without
    ``--compressed``, do not decode).
    """
    listed = accepted_codings(accept_encoding)
    wildcard = listed.get("*", 0.0)
    chosen = [(listed.get(c, wildcard), c) for c in DECODABLE]
    ranked = sorted((c for c in chosen if c[0] > 0), key=lambda c: -c[0])
    return ", ".join(name for _, name in ranked) or "identity"


def content_codings(content_encoding: str | None) -> list[str]:
    """The codings applied to a body, in the order they were applied (identity dropped)."""
    names = [part.strip().lower() for part in (content_encoding or "").split(",")]
    return [_ALIASES.get(n, n) for n in names if n and n != "identity"]


@dataclass(frozen=True)
class Decoded:
    """A body decoded for inspection.

    ``complete``: ``body`` is the whole content; otherwise it is a prefix (the
    encoded body was only partly read, or the content is over the bound).
    ``error``: why it could not be decoded (an unknown coding, corrupt data, a
    stream that ends early); ``body`` is then empty.
    """

    body: bytes
    complete: bool
    error: str | None = None


class _Undecodable(Exception):
    pass


def _inflate(data: bytes, wbits: int, limit: int, whole: bool) -> tuple[bytes, bool]:
    """Inflate at most ``limit`` bytes; (output, complete). Concatenated gzip
    members (RFC 1952 §2.2) are read one after the other."""
    out = bytearray()
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
            while len(out) <= limit and inflater.unconsumed_tail:
                out += inflater.decompress(inflater.unconsumed_tail, limit + 1 - len(out))
        except zlib.error as exc:
            raise _Undecodable(f"corrupt data ({exc})") from None
        if len(out) > limit:
            return bytes(out[:limit]), False
        if not inflater.eof:
            if whole:
                raise _Undecodable("the compressed stream ends early")
            return bytes(out), False
        data = inflater.unused_data
        if not data or wbits != 16 + zlib.MAX_WBITS:
            return bytes(out), True


def _decode_one(coding: str, data: bytes, limit: int, whole: bool) -> tuple[bytes, bool]:
    if coding == "gzip":
        return _inflate(data, 16 + zlib.MAX_WBITS, limit, whole)
    if coding == "deflate":
        # RFC 9110 §8.4.1.2 says zlib format (RFC 1950); some servers send raw
        # deflate (RFC 1951). The first two bytes tell them apart.
        wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and (data[0] << 8 | data[1]) % 31 == 0
        return _inflate(data, zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS, limit, whole)
    raise _Undecodable(f"content coding {coding!r} is not one the gateway asked for")


def decode_bounded(
    data: bytes, content_encoding: str | None, limit: int, *, whole: bool
) -> Decoded:
    """Decode ``data`` (a body with that ``Content-Encoding``) into at most ``limit`` bytes.

    ``whole``: ``data`` is the entire encoded body (so a stream that stops
    early is an error), not a prefix of it. Without a content coding ``data``
    is returned as it is. Memory never grows past ``limit`` decoded bytes per
    coding, however much the data would inflate to.
    """
    codings = content_codings(content_encoding)
    if not codings or (whole and not data):  # e.g. a HEAD reply, a 204
        return Decoded(data, whole)
    complete = whole
    try:
        for coding in reversed(codings):  # the last one applied is undone first
            data, done = _decode_one(coding, data, limit, complete)
            complete = complete and done
    except _Undecodable as exc:
        return Decoded(b"", False, str(exc))
    return Decoded(data, complete)
