from __future__ import annotations

from gateway.core.headers import forwardable_reply_headers, forwardable_request_headers


def test_hop_by_hop_and_caller_credentials_are_dropped() -> None:
    headers = [
        ("Host", "gateway"),
        ("Connection", "keep-alive, X-Secret-Hop"),
        ("X-Secret-Hop", "1"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("TE", "trailers"),
        ("Upgrade", "h2c"),
        ("Authorization", "Bearer caller-token"),
        ("Cookie", "a=b"),
        ("Proxy-Authorization", "Basic xyz"),
        ("Proxy-Connection", "keep-alive"),
        ("X-Gateway-User", "alice"),
        ("Accept", "application/json"),
        ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("X-Custom", "kept"),
        ("X-Request-Id", "re-added-by-the-gateway"),
    ]
    kept = dict(forwardable_request_headers(headers))
    assert kept == {
        "Accept": "application/json",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "X-Custom": "kept",
    }


def test_reply_drops_set_cookie_and_hop_by_hop() -> None:
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", "12"),
        ("Set-Cookie", "standin_buzz_cookie=secret"),
        ("Connection", "close"),
        ("Transfer-Encoding", "chunked"),
        ("X-Upstream", "1"),
    ]
    assert forwardable_reply_headers(headers) == (
        ("Content-Type", "application/json"),
        ("Content-Length", "12"),
        ("X-Upstream", "1"),
    )


def test_method_path_and_host_rewriting_headers_are_never_forwarded() -> None:
    # Issue 10 item 17: an upstream that honours these would execute another
    # method, path or host than the one the gateway routed, checked and counted.
    rewriting = [
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-HTTP-Method", "DELETE"),
        ("X-Method-Override", "DELETE"),
        ("X-Original-URL", "/admin/users"),
        ("X-Rewrite-URL", "/admin/users"),
        ("X-Forwarded-Host", "evil.example"),
        ("Forwarded", "host=evil.example;proto=https"),
        ("forwarded", "for=1.2.3.4"),
    ]
    kept = forwardable_request_headers([*rewriting, ("Accept", "application/json")])
    assert kept == (("Accept", "application/json"),)
