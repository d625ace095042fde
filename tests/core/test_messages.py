"""OutboundRequest.with_header: a copy with one header set, every other field kept."""

from __future__ import annotations

import dataclasses

from gateway.core.messages import OutboundRequest, headers_set


def test_with_header_keeps_every_other_field() -> None:
    # Every field given a non-default value: a field added to OutboundRequest and
    # forgotten by with_header (which builds the copy by hand) fails here.
    request = OutboundRequest(
        method="POST",
        base_url="https://api.example.com",
        path="/v1/x",
        query="a=1",
        headers=(("Accept", "*/*"), ("authorization", "old")),
        body=b"{}",
        streamed_body=True,
    )
    copy = request.with_header("Authorization", "Bearer t")
    assert copy.headers == (("Accept", "*/*"), ("Authorization", "Bearer t"))
    for f in dataclasses.fields(OutboundRequest):
        if f.name != "headers":
            assert getattr(copy, f.name) == getattr(request, f.name), f.name
            assert getattr(copy, f.name) != f.default, f"give {f.name} a non-default value"
    assert request.headers == (("Accept", "*/*"), ("authorization", "old"))  # unchanged


def test_headers_set_replaces_every_value_of_each_name_in_one_pass() -> None:
    headers = (("Accept", "a"), ("X-Request-Id", "caller"), ("accept-encoding", "br"), ("A", "1"))
    out = headers_set(headers, (("Accept-Encoding", "gzip"), ("x-request-id", "ours")))
    assert out == (
        ("Accept", "a"),
        ("A", "1"),
        ("Accept-Encoding", "gzip"),
        ("x-request-id", "ours"),
    )
    request = OutboundRequest("GET", "http://u", "/p", headers=headers)
    pairs = (("X-Request-Id", "ours"), ("B", "2"))
    assert request.with_headers(pairs).headers == headers_set(headers, pairs)
    assert request.with_header("A", "9").headers[-1] == ("A", "9")
