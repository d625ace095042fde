"""OutboundRequest.with_header: a copy with one header set, every other field kept."""

from __future__ import annotations

import dataclasses

from gateway.core.messages import OutboundRequest


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
