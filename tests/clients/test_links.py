"""BuzzStream's resource URIs and every upstream's Location lead back through the gateway.

The stand-ins name resources and redirect targets by absolute URLs under their
own base URL, as the real APIs do under theirs. A client that follows one as
it is would reach the upstream without credentials; through the gateway it
must reach the gateway's URL for that upstream instead (README, "Links").
"""

from __future__ import annotations

import json
import socket
from urllib.parse import quote

from tests.clients.conftest import Caller
from tests.harness import Gateway, Standins, call


def test_buzzstream_list_uris_are_followed_through_the_gateway(
    client: Caller, gateway: Gateway, standins: Standins
) -> None:
    reply = client.call("GET", "/buzzstream/websites")
    assert reply.status == 200
    uris = json.loads(reply.content)["list"]
    assert uris == [f"{gateway.url}/buzzstream/websites/1", f"{gateway.url}/buzzstream/websites/2"]
    followed = client.call("GET", uris[1])
    assert followed.status == 200
    detail = json.loads(followed.content)
    assert (detail["uri"], detail["name"]) == (uris[1], "Example Org")
    seen = standins.seen("buzzstream")[-1]
    assert (seen["path"], seen["auth_ok"]) == ("/v1/websites/2", True)


def test_a_rewritten_body_is_sent_as_it_now_is(client: Caller, gateway: Gateway) -> None:
    headers, raw = client.raw("GET", "/buzzstream/people/1")
    assert "content-encoding" not in headers  # the upstream's gzip no longer describes it
    assert int(headers["content-length"]) == len(raw)
    assert json.loads(raw)["website"] == f"{gateway.url}/buzzstream/websites/1"


def test_json_without_upstream_links_passes_byte_for_byte(client: Caller) -> None:
    headers, raw = client.raw("GET", "/buzzstream/__fault/echo")
    assert headers["content-encoding"] == "gzip"  # untouched, still compressed
    assert int(headers["content-length"]) == len(raw)


def test_replies_that_are_not_json_still_stream(gateway: Gateway) -> None:
    status, headers, body = call(gateway, "GET", "/buzzstream/__fault/big?size=300000")
    assert status == 200 and len(body) == 300000
    assert headers.get("transfer-encoding") == "chunked"


def test_a_redirect_to_the_upstream_is_followed_through_the_gateway(
    client: Caller, gateway: Gateway, standins: Standins
) -> None:
    target = quote("/api/v1/documents?ddName=orders", safe="/")
    path = f"/bizzstream/__fault/location/302?path={target}"
    headers, _ = client.raw("GET", path)
    expected = f"{gateway.url}/bizzstream/api/v1/documents?ddName=orders"
    assert headers["location"] == headers["content-location"] == expected
    if client.kind == "requests":  # requests follows redirects by default; httpx does not
        reply = client.call("GET", path)
    else:
        reply = client.call("GET", headers["location"])
    assert reply.status == 200 and json.loads(reply.content)["status"] == "ok"
    seen = standins.seen("bizzstream")[-1]
    assert seen["path"] == "/api/v1/documents" and seen["auth_ok"]


def test_location_of_every_upstream_is_rewritten(client: Caller, gateway: Gateway) -> None:
    for upstream, status in (("buzzstream", 201), ("beeswax", 303), ("bizzstream", 307)):
        target = quote("/a/b%20c?x=1", safe="/")
        headers, _ = client.raw("GET", f"/{upstream}/__fault/location/{status}?path={target}")
        assert headers["location"] == f"{gateway.url}/{upstream}/a/b%20c?x=1", upstream


def test_head_keeps_the_length_of_the_body_it_describes(gateway: Gateway) -> None:
    """A HEAD reply is not read for links (nor for hidden errors): its Content-Length
    is the upstream's, not the 0 bytes that came."""
    for path in ("/buzzstream/__fault/echo", "/beeswax/__fault/echo"):
        status, headers, body = call(gateway, "HEAD", path, None, {"Accept-Encoding": "gzip"})
        assert (status, body) == (200, b"")
        assert int(headers["content-length"]) > 100, path


def test_beeswax_v2_pages_link_back_through_the_gateway(client: Caller, gateway: Gateway) -> None:
    """Beeswax 2.0 lists name their next and previous pages by absolute URIs."""
    first = json.loads(client.call("GET", "/beeswax/rest/v2/campaigns?page_size=50").content)
    assert first["previous"] is None
    assert first["next"].startswith(f"{gateway.url}/beeswax/rest/v2/campaigns?")
    second = client.call("GET", first["next"])
    assert second.status == 200
    page = json.loads(second.content)
    assert page["previous"].startswith(f"{gateway.url}/beeswax/rest/v2/campaigns?")
    assert page["results"][0]["id"] == first["results"][-1]["id"] + 1


def test_without_a_usable_host_links_use_the_listen_address(gateway: Gateway) -> None:
    """HTTP/1.0 may send no Host, and a malformed one names no place: the links
    then point at the listen address, never at a made-up or port-less URL."""
    port = int(gateway.url.rsplit(":", 1)[1])
    for head in (b"GET /buzzstream/websites HTTP/1.0\r\n",
                 b"GET /buzzstream/websites HTTP/1.1\r\nHost: evil.example/x?\r\n"):  # fmt: skip
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head + b"Connection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        status, _, body = data.partition(b"\r\n\r\n")
        assert b" 200 " in status.split(b"\r\n")[0], data[:300]
        assert json.loads(body)["list"][0] == f"{gateway.url}/buzzstream/websites/1"
