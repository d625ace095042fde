"""The four upstreams' error and renewal cases, through requests and httpx defaults.

Each case is one an application meets every day: the caller's library asks for
gzip, the stand-in compresses, and the gateway must still map the error, find
the error hidden in a 200, flag a partial failure, or renew and replay.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.clients.conftest import Caller, Reply
from tests.conftest import assert_problem
from tests.harness import Standins

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def problem(reply: Reply, status: int, upstream: str) -> dict[str, Any]:
    assert reply.headers["content-type"].startswith("application/problem+json"), reply
    data = assert_problem(reply.content, status)
    assert reply.status == status and data["upstream"] == upstream
    assert data["request_id"] == reply.headers["x-request-id"]
    return data


def last_accept_encoding(standins: Standins, upstream: str) -> str:
    return str(standins.seen(upstream)[-1]["headers"].get("Accept-Encoding", ""))


def test_the_libraries_ask_for_gzip_and_the_standins_answer_with_it(
    client: Caller, standins: Standins
) -> None:
    """The premise of this suite: defaults accept gzip, so replies come compressed."""
    headers, raw = client.raw("GET", "/beeswax/rest/advertiser?advertiser_id=1")
    assert headers["content-encoding"] == "gzip"
    assert int(headers["content-length"]) == len(raw)  # consistent with the bytes sent
    assert raw[:2] == b"\x1f\x8b"
    assert "gzip" in last_accept_encoding(standins, "beeswax")


# -- Beeswax -------------------------------------------------------------------


def test_beeswax_success_false_inside_a_200_is_a_problem(client: Caller) -> None:
    reply = client.call("GET", "/beeswax/rest/advertiser?advertiser_name=nobody")
    data = problem(reply, 404, "beeswax")
    assert (data["code"], data["upstream_status"]) == ("not_found", 200)
    assert data["detail"] == "Nothing found matching those criteria"


def test_beeswax_406_is_a_validation_problem(client: Caller) -> None:
    reply = client.call("POST", "/beeswax/rest/advertiser", json={"alternative_id": None})
    data = problem(reply, 422, "beeswax")
    assert data["validation_errors"] == [
        {"field": "advertiser_name", "message": "advertiser_name is required"}
    ]


def test_beeswax_partial_failure_keeps_its_header_and_its_compressed_body(
    client: Caller,
) -> None:
    bulk = [{"advertiser_id": 1, "advertiser_name": "Renamed"}, {"advertiser_id": 99}]
    reply = client.call("PUT", "/beeswax/rest/advertiser", json=bulk)
    assert reply.status == 200, reply
    assert reply.headers["gateway-partial-failure"] == "true"
    assert json.loads(reply.content)["payload"][1]["success"] is False
    headers, raw = client.raw("PUT", "/beeswax/rest/advertiser", json=bulk)
    assert headers["gateway-partial-failure"] == "true"
    assert headers["content-encoding"] == "gzip" and int(headers["content-length"]) == len(raw)


def test_beeswax_401_logs_in_again_and_replays(client: Caller, standins: Standins) -> None:
    assert client.call("GET", "/beeswax/rest/advertiser?advertiser_id=1").status == 200
    before = standins.stats("beeswax").get("logins", 0)
    standins.admin("beeswax", "/__standin/expire_sessions")
    reply = client.call("GET", "/beeswax/rest/advertiser?advertiser_id=1")
    assert reply.status == 200, reply
    assert json.loads(reply.content)["success"] is True
    assert standins.stats("beeswax").get("logins", 0) == before + 1


# -- BizzStream ----------------------------------------------------------------


@pytest.fixture
def bizz_tokens(standins: Standins) -> Iterator[None]:
    yield
    standins.admin("bizzstream", "/__standin/settings", {"expired_tokens": []})


def test_bizzstream_errors_are_problems(client: Caller) -> None:
    data = problem(client.call("GET", "/bizzstream/api/v1/documents"), 400, "bizzstream")
    assert (data["code"], data["upstream_code"]) == ("validation_failed", "validation_error")
    reply = client.call("GET", "/bizzstream/api/v1/documents?ddName=x&_id=missing")
    data = problem(reply, 404, "bizzstream")
    assert (data["code"], data["upstream_code"]) == ("not_found", "not_found")


def test_bizzstream_token_expired_is_renewed_and_replayed(
    client: Caller, standins: Standins, bizz_tokens: None
) -> None:
    docs = "/bizzstream/api/v1/documents?ddName=orders"
    assert client.call("GET", docs).status == 200
    token = standins.seen("bizzstream")[-1]["headers"]["Authorization"].removeprefix("Bearer ")
    expired_before = standins.stats("bizzstream").get("token_expired", 0)
    standins.admin("bizzstream", "/__standin/settings", {"expired_tokens": [token]})
    reply = client.call("GET", docs)
    assert reply.status == 200, reply
    assert json.loads(reply.content)["status"] == "ok"
    assert standins.stats("bizzstream").get("token_expired", 0) == expired_before + 1
    assert standins.seen("bizzstream")[-1]["headers"]["Authorization"] != f"Bearer {token}"


# -- StreamOne -----------------------------------------------------------------


def test_streamone_errors_inside_a_200_are_problems(client: Caller) -> None:
    reply = client.call("POST", "/streamone/item/view", data={"id": "nope"})
    data = problem(reply, 404, "streamone")
    assert (data["upstream_status"], data["upstream_code"]) == (200, "ITEM_NOT_FOUND")
    reply = client.call("POST", "/streamone/user/create", json={"username": "alice"})
    assert problem(reply, 409, "streamone")["upstream_code"] == "USER_USERNAME_ALREADY_EXISTS"


def test_streamone_282_logs_the_session_in_again_and_replays(
    client: Caller, standins: Standins
) -> None:
    assert client.call("POST", "/streamone/item/view", data={"id": "item1"}).status == 200
    before = standins.stats("streamone")
    standins.admin("streamone", "/__standin/expire_sessions")
    reply = client.call("POST", "/streamone/item/view", data={"id": "item1"})
    assert reply.status == 200, reply
    assert json.loads(reply.content)["header"]["status"] == 0
    after = standins.stats("streamone")
    assert after.get("session_not_found", 0) == before.get("session_not_found", 0) + 1
    assert after.get("logins", 0) == before.get("logins", 0) + 1


# -- BuzzStream ----------------------------------------------------------------


def test_buzzstream_errors_are_problems(client: Caller) -> None:
    data = problem(client.call("GET", "/buzzstream/projects/forbidden"), 403, "buzzstream")
    assert data["code"] == "forbidden"
    data = problem(client.call("GET", "/buzzstream/websites/99"), 404, "buzzstream")
    assert (data["code"], data["detail"]) == ("not_found", "Not found")
    assert problem(client.call("GET", "/buzzstream/links/broken"), 502, "buzzstream")
