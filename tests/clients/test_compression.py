"""Compressed replies through the gateway: consistency for the caller, and bombs.

The policy (docs/errors.md, "Compressed replies"): upstream, the gateway asks
only for codings the caller accepts and it can decode; it decodes what it must
inspect into at most its inspection bound, and passes success bodies on as
they came, with their own ``Content-Encoding`` and a matching length.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.clients.conftest import Caller
from tests.conftest import assert_problem
from tests.harness import Gateway, Standins, call

BOMB = 512 * 1024 * 1024  # inflated size; about 0.5 MB on the wire


def peak_rss_kib(gw: Gateway) -> int:
    for line in Path(f"/proc/{gw.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize(
    ("accept", "sent_upstream", "encoding"),
    [
        (None, "identity", None),
        ("identity", "identity", None),
        ("gzip", "gzip", "gzip"),
        ("deflate", "deflate", None),  # the stand-ins, like nginx, only gzip
        ("br", "identity", None),
        ("zstd", "identity", None),
        ("*", "gzip, deflate", "gzip"),
        ("gzip;q=0, deflate;q=0.5", "deflate", None),
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", "gzip, deflate", "gzip"),
    ],
)
def test_every_accept_encoding_maps_the_hidden_error_and_passes_success_on(
    gateway: Gateway,
    standins: Standins,
    accept: str | None,
    sent_upstream: str,
    encoding: str | None,
) -> None:
    headers = {} if accept is None else {"Accept-Encoding": accept}
    status, _, body = call(gateway, "GET", "/beeswax/rest/advertiser?advertiser_name=x", None,
                           headers)  # fmt: skip
    problem = assert_problem(body, 404)
    assert (status, problem["upstream_status"]) == (404, 200)
    assert standins.seen("beeswax")[-1]["headers"]["Accept-Encoding"] == sent_upstream

    status, reply, body = call(gateway, "GET", "/beeswax/rest/advertiser?advertiser_id=1", None,
                               headers)  # fmt: skip
    assert status == 200
    assert reply.get("content-encoding") == encoding
    assert int(reply["content-length"]) == len(body)
    content = gzip.decompress(body) if encoding == "gzip" else body
    assert json.loads(content)["success"] is True


def test_a_gzip_bomb_error_is_mapped_within_the_bound(gateway: Gateway, client: Caller) -> None:
    before = peak_rss_kib(gateway)
    reply = client.call("GET", f"/bizzstream/__fault/gzipbomb/500?size={BOMB}")
    problem = assert_problem(reply.content, 502)
    assert (problem["code"], problem["upstream_status"]) == ("upstream_error", 500)
    assert peak_rss_kib(gateway) - before < 64 * 1024


def test_a_gzip_bomb_in_a_200_passes_on_unparsed_as_it_came(
    gateway: Gateway, client: Caller
) -> None:
    """Beeswax 200s are read for hidden errors: the bomb is decoded only up to the
    bound, then passed on still compressed (the caller asked for gzip)."""
    before = peak_rss_kib(gateway)
    headers, raw = client.raw("GET", f"/beeswax/__fault/gzipbomb/200?size={BOMB}")
    assert headers["content-encoding"] == "gzip"
    assert int(headers["content-length"]) == len(raw) < BOMB // 500
    assert peak_rss_kib(gateway) - before < 64 * 1024


@pytest.mark.parametrize(
    "path", ["/bizzstream/__fault/gzipbomb/500", "/beeswax/__fault/gzipbomb/200"]
)
def test_a_broken_gzip_body_that_must_be_read_is_an_upstream_error(
    gateway: Gateway, path: str
) -> None:
    _, _, body = call(gateway, "GET", f"{path}?size=100&cut=9", None,
                           {"Accept-Encoding": "gzip"})  # fmt: skip
    problem = assert_problem(body, 502)
    assert problem["code"] == "upstream_error"
    assert problem["detail"].endswith(
        "with a body the gateway cannot decode: the compressed stream ends early"
    )
