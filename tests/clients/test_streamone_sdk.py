"""StreamOne through the gateway, byte-compatible with the official PHP SDK v3.

Real processes: the stand-ins and a gateway. The stand-in keeps only
``H = crypt(md5_hex(password), salt)`` per user and checks the SDK's session
proof from it; it checks every signature over the raw bytes it received. What
the gateway sends is compared with what the SDK (``tests/clients/php_sdk.py``,
re-written from its source) would send for the same arguments.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clients.php_sdk import http_build_query
from tests.conftest import assert_problem
from tests.harness import (
    Gateway,
    Standins,
    call,
    gateway_env,
    launch_standins,
    running_gateway,
    write_config,
)

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SETTINGS = {
    "streamone": {
        "passwords": {"alice": "alice-password"},
        "v2_passwords": {"bob": "bob-password"},
        "hashes": {"carol": "$6$saltsalt$Yx1ZYbJ0qVZ0aR4q6kW7b8m5XJ0n9o2P"},  # SHA-512 crypt
    }
}


@pytest.fixture(scope="module")
def so() -> Iterator[Standins]:
    standins = launch_standins(SETTINGS)
    yield standins
    standins.stop()


@pytest.fixture(scope="module")
def gateway(so: Standins) -> Iterator[Gateway]:
    with running_gateway(gateway_env(so)) as gw:
        yield gw


def refused(so: Standins) -> int:
    stats = so.stats("streamone")
    return sum(stats.get(k, 0) for k in ("auth_failures", "signature_invalid", "auth_refused"))


def session_gateway(so: Standins, tmp_path: Path, user: str, password: str) -> Any:
    def change(data: dict[str, Any]) -> None:
        data["upstreams"]["streamone"]["auth"] = {
            "auth_type": "application",
            "actor_id": "application",
            "psk": "${STREAMONE_PSK}",
            "session": {"user": user, "password": "${SESSION_PASSWORD}"},
        }

    env = gateway_env(so, STREAMONE_PSK="apppsk", SESSION_PASSWORD=password)
    return running_gateway(env, write_config(tmp_path, change))


def item_view(gw: Gateway) -> tuple[int, bytes]:
    status, _, reply = call(gw, "POST", "/streamone/item/view", b"id=item1", FORM)
    return status, reply


def test_session_login_without_v2_hash(so: Standins, tmp_path: Path) -> None:
    so.reset()
    with session_gateway(so, tmp_path, "alice", "alice-password") as gw:
        for _ in range(2):
            status, reply = item_view(gw)
            assert status == 200, reply
            assert json.loads(reply)["header"]["status"] == 0
    seen = so.seen("streamone")
    create = next(s for s in seen if s["path"] == "/api/session/create")
    assert sorted(create["extra"]["arguments"]) == ["challenge", "response"]  # no v2hash
    assert [s["principal"] for s in seen if s["path"] == "/api/item/view"] == ["alice"] * 2
    assert so.stats("streamone").get("logins") == 1 and refused(so) == 0


def test_session_login_with_needsv2hash_sends_the_v2_hash(so: Standins, tmp_path: Path) -> None:
    so.reset()
    with session_gateway(so, tmp_path, "bob", "bob-password") as gw:
        status, reply = item_view(gw)
        assert status == 200, reply
        so.admin("streamone", "/__standin/expire_sessions")
        status, reply = item_view(gw)  # 282: logs in again, now without the v2 hash
        assert status == 200, reply
    creates = [s["extra"]["arguments"] for s in so.seen("streamone")
               if s["path"] == "/api/session/create"]  # fmt: skip
    assert len(creates) == 2
    assert creates[0]["v2hash"] == hashlib.md5(b"bob-password").hexdigest()
    assert "v2hash" not in creates[1]  # the platform converted bob to H on the first login
    stats = so.stats("streamone")
    assert (stats.get("logins"), stats.get("v2_converted")) == (2, 1)


def test_a_wrong_session_password_is_upstream_auth_failed(so: Standins, tmp_path: Path) -> None:
    so.reset()
    with session_gateway(so, tmp_path, "alice", "not-alice-password") as gw:
        _, reply = item_view(gw)
    problem = assert_problem(reply, 502)
    assert problem["code"] == "upstream_auth_failed"
    assert "status 3" in problem["detail"] and "not-alice-password" not in reply.decode()
    assert so.stats("streamone").get("login_failures") == 1


def test_an_unknown_salt_scheme_is_upstream_auth_failed(so: Standins, tmp_path: Path) -> None:
    so.reset()
    with session_gateway(so, tmp_path, "carol", "carol-password") as gw:
        _, reply = item_view(gw)
    problem = assert_problem(reply, 502)
    assert problem["code"] == "upstream_auth_failed"
    assert "salt the gateway cannot use" in problem["detail"] and "$6$" in problem["detail"]
    assert [s["path"] for s in so.seen("streamone")] == ["/api/session/initialize"]


ARGUMENTS: list[tuple[str, str]] = [
    ("title", "two words ~ Café ☕ 日本"),
    ("tags", "x y,~z"),
    ("public", "1"),
    ("empty", ""),
]


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (
            json.dumps(
                {"title": ARGUMENTS[0][1], "tags": ["x y", "~z"], "public": True, "empty": None}
            ).encode(),
            JSON,
        ),
        # the same arguments spelled another way: %20 and a raw ~
        (
            b"title=two%20words%20~%20Caf%C3%A9%20%E2%98%95%20%E6%97%A5%E6%9C%AC"
            b"&tags=x%20y%2C~z&public=1&empty",
            FORM,
        ),
    ],
)
def test_arguments_are_sent_and_signed_as_the_php_sdk_writes_them(
    gateway: Gateway, so: Standins, body: bytes, headers: dict[str, str]
) -> None:
    so.reset()
    path = "/streamone/item/create?account=a%7Eb%20c"
    status, _, reply = call(gateway, "POST", path, body, headers)
    assert status == 200, reply
    assert json.loads(reply)["header"]["status"] == 0, reply
    seen = so.seen("streamone")[-1]
    assert seen["body"] == http_build_query(ARGUMENTS)  # the bytes the SDK would send
    assert seen["body"] == (
        "title=two+words+%7E+Caf%C3%A9+%E2%98%95+%E6%97%A5%E6%9C%AC&tags=x+y%2C%7Ez&public=1&empty="
    )
    assert seen["extra"]["raw_query"].startswith("account=a%7Eb+c&api=3&")
    assert refused(so) == 0  # the stand-in verified the signature over those raw bytes
