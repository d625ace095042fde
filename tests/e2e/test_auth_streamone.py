"""StreamOne signing end to end: real stand-in and gateway processes.

Acceptance (issue 3): JSON arguments accepted (turned into a signed form body),
form arguments accepted, ``account``/``customer``/``timezone`` passed through,
unusable requests refused, and sessions renewed on status 282. The stand-in
checks every signature with its own stdlib code (``streamone_verify.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import pytest

from tests.conftest import assert_problem
from tests.e2e.auth_support import call, renewals, write_config
from tests.harness import Gateway, Standins, gateway_env, launch_standins, running_gateway

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def so() -> Iterator[Standins]:
    standins = launch_standins()
    yield standins
    standins.stop()


@pytest.fixture(scope="module")
def gateway(so: Standins) -> Iterator[Gateway]:
    with running_gateway(gateway_env(so)) as gw:
        yield gw


def refused(standins: Standins) -> int:
    stats = standins.stats("streamone")
    return sum(stats.get(k, 0) for k in ("auth_failures", "signature_invalid", "auth_refused"))


def envelope(body: bytes) -> dict[str, Any]:
    data = json.loads(body)
    assert data["header"]["status"] == 0, data
    return dict(data)


def test_json_arguments_become_a_signed_form_body(gateway: Gateway, so: Standins) -> None:
    so.reset()
    args = {"title": "Made by JSON", "tags": ["a", "b c"], "public": False}
    status, _, body = call(gateway, "POST", "/streamone/item/create?timezone=UTC",
                           json.dumps(args).encode(), JSON)  # fmt: skip
    assert status == 200, body
    item = envelope(body)["body"]
    assert (item["title"], item["tags"], item["public"]) == ("Made by JSON", ["a", "b c"], False)
    seen = so.seen("streamone")[-1]
    assert seen["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen["extra"]["arguments"] == {"title": "Made by JSON", "tags": "a,b c", "public": "0"}
    query = dict(parse_qsl(seen["query_string"]))
    assert (query["api"], query["format"], query["timezone"]) == ("3", "json", "UTC")
    assert seen["query_string"].rsplit("&", 1)[1].startswith("signature=")
    assert refused(so) == 0


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/streamone/item/view", b"id=item1", FORM),
        ("/streamone/item/view?account=acc1%2Cacc2", json.dumps({"id": "item2"}).encode(), JSON),
        ("/streamone/item/list?customer=cust1&timezone=Europe%2FAmsterdam", None, {}),
        ("/streamone/item/list", b"", FORM),
    ],
)
def test_form_and_json_arguments_and_caller_parameters_are_accepted(
    gateway: Gateway, so: Standins, path: str, body: bytes | None, headers: dict[str, str]
) -> None:
    so.reset()
    status, _, reply = call(gateway, "POST", path, body, headers)
    assert status == 200, reply
    envelope(reply)
    seen = so.seen("streamone")[-1]
    if "?" in path:  # the caller's parameters arrive (the record shows them decoded)
        for pair in path.split("?", 1)[1].split("&"):
            assert unquote(pair) in seen["query_string"].split("&")
    assert seen["principal"] == "user"
    assert refused(so) == 0


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/streamone/item/view?user=other", None, {}),
        ("/streamone/item/view?signature=abc", None, {}),
        ("/streamone/item/view?account=a&customer=c", None, {}),
        ("/streamone/item/view", b"[1, 2]", JSON),
        ("/streamone/item/view", b'{"id": {"nested": 1}}', JSON),
        ("/streamone/item/view", b"id=item1", {"Content-Type": "text/plain"}),
    ],
)
def test_unusable_requests_are_refused_before_the_upstream(
    gateway: Gateway, so: Standins, path: str, body: bytes | None, headers: dict[str, str]
) -> None:
    so.reset()
    _, _, reply = call(gateway, "POST", path, body, headers)
    assert assert_problem(reply, 400)["code"] == "invalid_request"
    assert so.stats("streamone").get("requests", 0) == 0


def test_application_actor(so: Standins) -> None:
    env = gateway_env(so, STREAMONE_AUTH_TYPE="application", STREAMONE_ACTOR_ID="application",
                      STREAMONE_PSK="apppsk")  # fmt: skip
    so.reset()
    with running_gateway(env) as gw:
        status, _, reply = call(gw, "POST", "/streamone/item/view", b'{"id": "item1"}', JSON)
    assert status == 200, reply
    assert so.seen("streamone")[-1]["principal"] == "application"
    assert refused(so) == 0


def test_session_login_and_renewal_after_282(so: Standins, tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["upstreams"]["streamone"]["auth"] = {
            "auth_type": "application",
            "actor_id": "application",
            "psk": "${STREAMONE_PSK}",
            "session": {"user": "alice", "password": "${ALICE_PASSWORD}"},
        }

    env = gateway_env(so, STREAMONE_PSK="apppsk", ALICE_PASSWORD="alice-password")
    so.reset()
    with running_gateway(env, write_config(tmp_path, change)) as gw:
        for _ in range(3):
            status, _, reply = call(gw, "POST", "/streamone/item/view", b"id=item1", FORM)
            assert status == 200, reply
        assert so.stats("streamone").get("logins") == 1
        assert [s["principal"] for s in so.seen("streamone")][-3:] == ["alice"] * 3

        so.admin("streamone", "/__standin/expire_sessions")
        status, _, reply = call(gw, "POST", "/streamone/item/view", b"id=item1", FORM)
        assert status == 200, reply  # 282, one new login, the call replayed once
        stats = so.stats("streamone")
        assert (stats.get("logins"), stats.get("session_not_found")) == (2, 1)
        assert stats.get("signature_invalid", 0) == 0
        assert renewals(gw, "streamone") == 2
