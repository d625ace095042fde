"""Content codings: the Accept-Encoding sent upstream, and bounded decoding (bombs included)."""

from __future__ import annotations

import gzip
import resource
import zlib

import pytest

from gateway.core.content_coding import (
    Decoded,
    accepted_codings,
    content_codings,
    decode_bounded,
    upstream_accept_encoding,
)

JSON = b'{"success": false, "errors": ["ERROR: Nothing found matching those criteria"]}'


@pytest.mark.parametrize(
    ("caller", "upstream"),
    [
        (None, "identity"),  # curl without --compressed: decodes nothing
        ("", "identity"),
        ("identity", "identity"),
        ("gzip, deflate", "gzip, deflate"),  # requests, aiohttp
        ("gzip, deflate, br, zstd", "gzip, deflate"),  # httpx with brotli/zstd, browsers
        ("br", "identity"),
        ("zstd, br;q=0.9", "identity"),
        ("*", "gzip, deflate"),
        ("*;q=0", "identity"),
        ("*, gzip;q=0", "deflate"),
        ("gzip;q=0", "identity"),
        ("deflate;q=1.0, gzip;q=0.5", "deflate, gzip"),
        ("GZIP;Q=0.8", "gzip"),
        ("x-gzip", "gzip"),
        ("gzip;q=abc, deflate", "deflate"),  # a malformed q-value counts as 0
        ("gzip;q=2", "identity"),  # q-values are 0..1
        (" , ,gzip ;q=1 ", "gzip"),
    ],
)
def test_upstream_accept_encoding(caller: str | None, upstream: str) -> None:
    assert upstream_accept_encoding(caller) == upstream


def test_accepted_codings_keeps_the_best_q() -> None:
    assert accepted_codings("gzip;q=0.1, x-gzip;q=0.7, br") == {"gzip": 0.7, "br": 1.0}


def test_content_codings_in_the_order_applied() -> None:
    assert content_codings("identity") == []
    assert content_codings("deflate, X-GZIP") == ["deflate", "gzip"]
    assert content_codings(None) == []


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # RFC 9110: zlib format
        ("deflate", _raw_deflate),  # what some servers send instead
        ("gzip, deflate", lambda b: zlib.compress(gzip.compress(b))),
        ("identity", lambda b: b),
        (None, lambda b: b),
    ],
)
def test_decodes_what_servers_send(coding: str | None, encode: object) -> None:
    assert callable(encode)
    assert decode_bounded(encode(JSON), coding, 1024, whole=True) == Decoded(JSON, True)


def test_concatenated_gzip_members() -> None:
    data = gzip.compress(b'{"a": ') + gzip.compress(b"1}")
    assert decode_bounded(data, "gzip", 100, whole=True) == Decoded(b'{"a": 1}', True)


def test_a_prefix_decodes_to_a_prefix() -> None:
    data = gzip.compress(JSON * 100)
    half = decode_bounded(data[: len(data) // 2], "gzip", 10**6, whole=False)
    assert half.error is None and not half.complete
    assert (JSON * 100).startswith(half.body)


def test_content_over_the_bound_is_cut_at_the_bound() -> None:
    decoded = decode_bounded(gzip.compress(JSON), "gzip", 10, whole=True)
    assert decoded == Decoded(JSON[:10], False)
    assert decode_bounded(gzip.compress(JSON), "gzip", len(JSON), whole=True).complete


@pytest.mark.parametrize(
    ("data", "coding", "error"),
    [
        (b"not gzip at all", "gzip", "corrupt data"),
        (gzip.compress(JSON)[:-12], "gzip", "ends early"),
        (JSON, "br", "content coding 'br' is not one the gateway asked for"),
        (JSON, "compress", "not one the gateway asked for"),
    ],
)
def test_undecodable_bodies_say_why(data: bytes, coding: str, error: str) -> None:
    decoded = decode_bounded(data, coding, 1024, whole=True)
    assert decoded.body == b"" and not decoded.complete
    assert decoded.error is not None and error in decoded.error


def test_empty_body_with_a_coding_is_empty() -> None:
    assert decode_bounded(b"", "gzip", 10, whole=True) == Decoded(b"", True)


def _members(size: int) -> bytes:
    """``size`` bytes of zeros as concatenated 1 MiB gzip members (~1 KB each)."""
    return gzip.compress(b"\0" * (1 << 20), 9) * (size >> 20)


def _one_member(size: int) -> bytes:
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    return b"".join([*(packer.compress(block) for _ in range(size >> 20)), packer.flush()])


@pytest.mark.parametrize("shape", ["one member", "many members", "gzip of gzip"])
def test_a_decompression_bomb_stops_at_the_bound(shape: str) -> None:
    """Memory stays near the 4 MiB bound whatever the bomb inflates to (128 MiB-1 GiB)."""
    coding = "gzip"
    if shape == "one member":
        bomb = _one_member(128 << 20)
    else:
        bomb = _members(1 << 30)
        if shape == "gzip of gzip":
            bomb, coding = gzip.compress(bomb, 9), "gzip, gzip"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    decoded = decode_bounded(bomb, coding, 4 << 20, whole=True)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert decoded == Decoded(b"\0" * (4 << 20), False)
    assert grown < 48 * 1024, f"peak memory grew by {grown} KiB"
