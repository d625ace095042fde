"""Links to the upstream rewritten to the gateway: URLs, headers' paths, JSON bodies."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.links import LinkMap, rewrite_json

BUZZ = LinkMap("https://api.buzzstream.com/v1", "http://127.0.0.1:8080/buzzstream")
LOCAL = LinkMap("http://127.0.0.1:9103/v1", "https://gw.example/sidecar/buzzstream")
STREAMONE = LinkMap("https://api.streamonecloud.net/api", "http://127.0.0.1:8080/streamone")
ROOTLESS = LinkMap("http://127.0.0.1:9101", "http://127.0.0.1:8080/bizzstream")


@pytest.mark.parametrize(
    ("links", "value", "expected"),
    [
        (BUZZ, "https://api.buzzstream.com/v1/websites/1", "http://127.0.0.1:8080/buzzstream/websites/1"),
        (BUZZ, "https://api.buzzstream.com/v1", "http://127.0.0.1:8080/buzzstream"),
        (BUZZ, "https://api.buzzstream.com/v1/", "http://127.0.0.1:8080/buzzstream/"),
        (BUZZ, "https://api.buzzstream.com/v1/people?offset=50&max_results=50#x",
         "http://127.0.0.1:8080/buzzstream/people?offset=50&max_results=50#x"),
        (BUZZ, "HTTPS://API.BuzzStream.com:443/v1/websites/1", "http://127.0.0.1:8080/buzzstream/websites/1"),
        (BUZZ, "https://api.buzzstream.com/v1/a%20b;x", "http://127.0.0.1:8080/buzzstream/a%20b;x"),
        (BUZZ, "/v1/websites/3", "/buzzstream/websites/3"),  # an absolute path (headers)
        (LOCAL, "http://127.0.0.1:9103/v1/websites/2", "https://gw.example/sidecar/buzzstream/websites/2"),
        (LOCAL, "/v1/websites/2?x=1", "/sidecar/buzzstream/websites/2?x=1"),
        (STREAMONE, "https://api.streamonecloud.net/api/item/view", "http://127.0.0.1:8080/streamone/item/view"),
        (ROOTLESS, "http://127.0.0.1:9101/api/v1/documents?ddName=x",
         "http://127.0.0.1:8080/bizzstream/api/v1/documents?ddName=x"),
        (ROOTLESS, "/api/v1/documents", "/bizzstream/api/v1/documents"),
    ],
)  # fmt: skip
def test_links_under_the_root_go_to_the_gateway(links: LinkMap, value: str, expected: str) -> None:
    assert links.url(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "https://api.buzzstream.com/v10/websites",  # not on a segment boundary
        "https://api.buzzstream.com/websites/1",  # outside the base path
        "http://api.buzzstream.com/v1/websites/1",  # another scheme: another origin
        "https://api.buzzstream.com:8443/v1/websites/1",  # another port
        "https://api.buzzstream.com.evil.example/v1/websites/1",
        "https://user@api.buzzstream.com/v1/websites/1",  # userinfo: not the upstream's own form
        "https://app.buzzstream.com/oauth_verification",  # the web app, not the API
        "//api.buzzstream.com/v1/websites/1",  # network-path reference
        "websites/1",  # relative references resolve the same against either URL
        "/v2/x",
        "mailto:someone@example.com",
        "https://api.buzzstream.com/v1/a b",  # not a URL as sent
        "https://api.buzzstream.com:bad/v1",
        "",
    ],
)
def test_other_values_are_left_alone(value: str) -> None:
    assert BUZZ.url(value) is None


def test_absolute_paths_only_when_asked() -> None:
    assert BUZZ.url("/v1/websites/1", paths=False) is None


def test_json_values_are_rewritten_and_nothing_else_changes() -> None:
    body = (
        b'{"list": ["https://api.buzzstream.com/v1/websites/1",\n'
        b'  "https:\\/\\/api.buzzstream.com\\/v1\\/websites\\/2"],\n'
        b' "https://api.buzzstream.com/v1/key": 1.10, "note": "see https://api.buzzstream.com/v1/x",'
        b' "name": "caf\\u00e9 \xc3\xa9", "n": 1e3, "home": "https://example.com/v1/a"}'
    )
    out = rewrite_json(body, BUZZ)
    assert out == (
        b'{"list": ["http://127.0.0.1:8080/buzzstream/websites/1",\n'
        b'  "http://127.0.0.1:8080/buzzstream/websites/2"],\n'
        b' "https://api.buzzstream.com/v1/key": 1.10, "note": "see https://api.buzzstream.com/v1/x",'
        b' "name": "caf\\u00e9 \xc3\xa9", "n": 1e3, "home": "https://example.com/v1/a"}'
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"list": ["https://example.com/v1/websites/1"]}',  # no upstream URL
        b'{"uri": "https://api.buzzstream.com/v2/x"}',  # host named, but not under the root
        b'"https://api.buzzstream.com/v1/websites/1',  # not JSON
        b'{"uri": "https://api.buzzstream.com/v1/x"}\xff',  # not UTF-8
        b"",
    ],
)
def test_bodies_without_an_upstream_url_are_not_rewritten(body: bytes) -> None:
    assert rewrite_json(body, BUZZ) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.sampled_from(["https://api.buzzstream.com/v1/websites/1", "/v1/x", "https://api.buzzstream.com/v1"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(json_values, st.booleans())
def test_rewriting_is_the_same_as_mapping_every_string_value(value: object, ascii_: bool) -> None:
    def mapped(v: object) -> object:
        if isinstance(v, str):
            return BUZZ.url(v, paths=False) or v
        if isinstance(v, list):
            return [mapped(x) for x in v]
        if isinstance(v, dict):
            return {k: mapped(x) for k, x in v.items()}
        return v

    body = json.dumps(value, ensure_ascii=ascii_).encode()
    out = rewrite_json(body, BUZZ)
    assert json.loads(out if out is not None else body) == mapped(value)


def test_the_origin_is_the_requests_host_only_when_it_is_a_host() -> None:
    from gateway.core.links import request_origin

    default = "http://127.0.0.1:8080"
    for host in ("gw.example", "gw.example:8443", "10.0.0.7:80", "[::1]:8080", "my_gateway"):
        assert request_origin("https", host, default) == f"https://{host}"
    for host in (None, "", "evil.example/x?", "a b", "gw@evil.example", "h:port", "h:123456"):
        assert request_origin("http", host, default) == default, host
