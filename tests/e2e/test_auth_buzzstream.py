"""BuzzStream OAuth 1.0a end to end: real stand-in, Redis and gateway processes.

Acceptance (issue 3): every method accepted, including a form POST (whose
parameters are signed); the 3-legged flow from ``/oauth/buzzstream/start`` to a
call signed with the user's token. The stand-in verifies every signature with
its own stdlib code (``gateway/standins/oauth1_verify.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis as redis_sync

from tests.conftest import assert_problem
from tests.e2e.auth_support import call, write_config
from tests.harness import Gateway, Standins, gateway_env, launch_standins, running_gateway

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
CALLER = {"Authorization": "Bearer caller-token-for-tests"}


@pytest.fixture(scope="module")
def buzz() -> Iterator[Standins]:
    standins = launch_standins({"buzzstream": {"rate_per_second": 1000}})
    yield standins
    standins.stop()


@pytest.fixture(scope="module")
def gateway(buzz: Standins, redis_url: str, tmp_path_factory: Any) -> Iterator[Gateway]:
    def change(data: dict[str, Any]) -> None:
        data["callers"] = {"tokens": [{"token": "caller-token-for-tests", "users": "*"}]}
        data["token_store_key"] = "${GATEWAY_TOKEN_STORE_KEY}"

    config = write_config(tmp_path_factory.mktemp("buzz"), change)
    env = gateway_env(buzz, redis_url, GATEWAY_TOKEN_STORE_KEY="test-store-key-0123456789")
    with running_gateway(env, config) as gw:
        yield gw


def refusals(standins: Standins) -> dict[str, int]:
    stats = standins.stats("buzzstream")
    return {k: stats.get(k, 0) for k in ("auth_failures", "signature_invalid", "nonce_reused")}


CASES = [
    ("GET", "/buzzstream/websites?max_results=1&expand=true", None, {}),
    ("GET", "/buzzstream/websites/1/people?expand=true", None, {}),
    (
        "POST",
        "/buzzstream/websites?tag=a%20b",
        b"url=https%3A%2F%2Fform.example&name=A+b%26c",
        FORM,
    ),
    ("POST", "/buzzstream/people", json.dumps({"name": "J. Son"}).encode(), JSON),
    ("PUT", "/buzzstream/websites/1", b"name=Renamed+by+form", FORM),
    ("PUT", "/buzzstream/websites/2", json.dumps({"name": "Renamed"}).encode(), JSON),
    ("DELETE", "/buzzstream/tags/1", None, {}),
    ("GET", "/buzzstream/users/1", None, {}),
]


@pytest.mark.parametrize(("method", "path", "body", "headers"), CASES)
def test_every_method_is_accepted(
    gateway: Gateway, buzz: Standins, method: str, path: str, body: bytes | None,
    headers: dict[str, str],
) -> None:  # fmt: skip
    buzz.reset()
    status, _, reply = call(gateway, method, path, body, {**CALLER, **headers})
    assert status in (200, 201, 204), reply
    assert refusals(buzz) == {"auth_failures": 0, "signature_invalid": 0, "nonce_reused": 0}
    seen = buzz.seen("buzzstream")[-1]
    assert seen["principal"] == "standin-consumer-key"
    if body is not None:
        assert seen["body"] == body.decode()  # the body went through unchanged
    if headers is FORM and method == "POST":
        assert json.loads(reply)["name"] == "A b&c"


def test_three_legged_flow_signs_calls_with_the_users_token(
    gateway: Gateway, buzz: Standins, redis_url: str
) -> None:
    # 1. The internal app starts onboarding for its user "alice" (caller-authenticated).
    assert call(gateway, "GET", "/oauth/buzzstream/start?user=alice")[0] == 401
    status, headers, _ = call(gateway, "GET", "/oauth/buzzstream/start?user=alice", None, CALLER)
    assert status == 302, headers
    approve = urlsplit(headers["location"])
    assert approve.path == "/v1/oauth_verification"
    request_token = parse_qs(approve.query)["oauth_token"][0]

    # 2. Alice approves at BuzzStream as her BuzzStream user "buzz-alice".
    status, headers, _ = call(f"http://{approve.netloc}", "GET",
                              f"{approve.path}?{approve.query}&user=buzz-alice")  # fmt: skip
    assert status == 302
    back = urlsplit(headers["location"])
    assert f"{back.scheme}://{back.netloc}" == gateway.url
    assert back.path == "/oauth/buzzstream/callback"

    # 3. Her browser comes back to the gateway (no caller token): the token pair is stored.
    status, _, reply = call(gateway, "GET", f"{back.path}?{back.query}")
    assert status == 200, reply
    assert json.loads(reply) == {"status": "connected", "upstream": "buzzstream", "user": "alice"}
    status, _, reply = call(gateway, "GET", f"{back.path}?{back.query}")  # used once only
    assert assert_problem(reply, 400)["code"] == "invalid_request"

    # 4. Calls on her behalf are signed with her token; others stay 2-legged.
    buzz.reset()
    as_alice = {**CALLER, "X-Gateway-User": "alice"}
    assert call(gateway, "GET", "/buzzstream/websites", None, as_alice)[0] == 200
    body = b"url=https%3A%2F%2Falice.example"
    assert call(gateway, "POST", "/buzzstream/websites", body, {**as_alice, **FORM})[0] == 201
    as_bob = {**CALLER, "X-Gateway-User": "bob"}
    assert call(gateway, "GET", "/buzzstream/websites", None, as_bob)[0] == 200
    principals = [s["principal"] for s in buzz.seen("buzzstream")]
    assert principals == ["buzz-alice", "buzz-alice", "standin-consumer-key"]
    assert refusals(buzz) == {"auth_failures": 0, "signature_invalid": 0, "nonce_reused": 0}

    # The pair is in Redis, encrypted: the access token never appears in clear.
    header = buzz.seen("buzzstream")[0]["headers"]["Authorization"]
    access_token = header.split('oauth_token="', 1)[1].split('"', 1)[0]
    client = redis_sync.Redis.from_url(redis_url)
    try:
        keys = client.keys("*oauth1:buzzstream:user:alice")
        assert keys
        assert all(access_token.encode() not in (client.get(k) or b"") for k in keys)
        assert request_token.encode() not in b"".join(client.get(k) or b"" for k in keys)
    finally:
        client.close()


def test_the_token_survives_a_restart_with_the_same_key(
    gateway: Gateway, buzz: Standins, redis_url: str, tmp_path: Path
) -> None:
    """A second gateway on the same Redis and key reads tokens the first stored."""
    _, headers, _ = call(gateway, "GET", "/oauth/buzzstream/start?user=carol", None, CALLER)
    approve = urlsplit(headers["location"])
    _, headers, _ = call(f"http://{approve.netloc}", "GET",
                         f"{approve.path}?{approve.query}&user=buzz-carol")  # fmt: skip
    back = urlsplit(headers["location"])
    assert call(gateway, "GET", f"{back.path}?{back.query}")[0] == 200
    buzz.reset()
    config = write_config(tmp_path, lambda d: d.update({"token_store_key": "${KEY}"}))
    as_carol = {"X-Gateway-User": "carol"}
    with running_gateway({**gateway.env, "KEY": "test-store-key-0123456789"}, config) as other:
        assert call(other, "GET", "/buzzstream/websites", None, as_carol)[0] == 200
    with running_gateway({**gateway.env, "KEY": "another-key"}, config) as wrong:
        # A key that cannot decrypt the stored pair: shared credentials, never a crash.
        assert call(wrong, "GET", "/buzzstream/websites", None, as_carol)[0] == 200
    principals = [s["principal"] for s in buzz.seen("buzzstream")]
    assert principals == ["buzz-carol", "standin-consumer-key"]


def test_onboarding_refusals_are_problems(gateway: Gateway) -> None:
    _, _, reply = call(gateway, "GET", "/oauth/buzzstream/start", None, CALLER)
    assert assert_problem(reply, 400)["code"] == "invalid_request"
    _, _, reply = call(gateway, "GET", "/oauth/buzzstream/callback?oauth_token=nope&verifier=x")
    assert assert_problem(reply, 400)["code"] == "invalid_request"
    _, _, reply = call(gateway, "POST", "/oauth/buzzstream/start?user=a", b"", CALLER)
    assert assert_problem(reply, 405)["code"] == "method_not_allowed"
