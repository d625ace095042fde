"""Callers are bound to users; onboarding never silently replaces a token and is paced
(issue 10, items 2 and 3). Real stand-ins, Redis and gateway process.

Before: any caller holding any caller token could send any ``X-Gateway-User`` (and
sign with that user's credentials), run ``/oauth/buzzstream/start?user=alice`` and
silently replace alice's stored token with its own account; and 10 concurrent
onboardings made BuzzStream suspend 5 calls (``requestToken`` bypassed the quota).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import assert_problem
from tests.e2e.auth_support import call, metric, write_config
from tests.harness import Gateway, Standins, gateway_env, launch_standins, running_gateway

ALICE_APP = {"Authorization": "Bearer tok-alice-app"}
ADMIN = {"Authorization": "Bearer tok-admin"}
START = "/oauth/buzzstream/start"


@pytest.fixture(scope="module")
def buzz() -> Iterator[Standins]:
    standins = launch_standins()  # BuzzStream's documented 5 calls/s, suspending beyond
    yield standins
    standins.stop()


@pytest.fixture(scope="module")
def gateway(buzz: Standins, redis_url: str, tmp_path_factory: Any) -> Iterator[Gateway]:
    def change(data: dict[str, Any]) -> None:
        data["callers"] = {"tokens": [
            {"name": "alice-app", "token": "tok-alice-app", "users": ["alice"]},
            {"name": "admin", "token": "tok-admin", "users": "*"},
        ]}  # fmt: skip
        data["token_store_key"] = "test-store-key-0123456789"
        data["redis"]["key_prefix"] = "binding"
        # Ten onboardings open ten Redis connections at once; on a loaded test machine
        # the shipped 50 ms would time some out (the token store's 503, not the point).
        data["redis"]["timeout"] = "2s"

    config = write_config(tmp_path_factory.mktemp("binding"), change)
    with running_gateway(gateway_env(buzz, redis_url), config) as gw:
        yield gw


def onboard(
    gw: Gateway, user: str, buzz_user: str, headers: dict[str, str], query: str = ""
) -> int:
    """Start, approve at the stand-in as ``buzz_user``, come back; the callback's status."""
    status, reply_headers, body = call(gw, "GET", f"{START}?user={user}{query}", None, headers)
    assert status == 302, body
    approve = urlsplit(reply_headers["location"])
    status, reply_headers, _ = call(f"http://{approve.netloc}", "GET",
                                    f"{approve.path}?{approve.query}&user={buzz_user}")  # fmt: skip
    assert status == 302
    back = urlsplit(reply_headers["location"])
    return call(gw, "GET", f"{back.path}?{back.query}")[0]


def principal_of_a_call_as(gw: Gateway, buzz: Standins, user: str) -> str:
    assert (
        call(gw, "GET", "/buzzstream/websites", None, {**ADMIN, "X-Gateway-User": user})[0] == 200
    )
    return str(buzz.seen("buzzstream")[-1]["principal"])


def test_a_caller_acts_only_for_the_users_its_token_names(gateway: Gateway, buzz: Standins) -> None:
    before = len(buzz.seen("buzzstream"))
    for path in ("/buzzstream/websites", "/bizzstream/api/v1/documents?ddName=orders"):
        _, _, body = call(gateway, "GET", path, None, {**ALICE_APP, "X-Gateway-User": "bob"})
        problem = assert_problem(body, 403)
        assert problem["code"] == "forbidden"
        assert "'alice-app' may not act for the user 'bob'" in problem["detail"]
    assert len(buzz.seen("buzzstream")) == before  # refused before anything was signed
    as_alice = {**ALICE_APP, "X-Gateway-User": "alice"}
    assert call(gateway, "GET", "/buzzstream/websites", None, as_alice)[0] == 200
    assert call(gateway, "GET", "/buzzstream/websites", None, ALICE_APP)[0] == 200  # shared
    as_bob = {**ADMIN, "X-Gateway-User": "bob"}
    assert call(gateway, "GET", "/buzzstream/websites", None, as_bob)[0] == 200  # "*"
    _, _, body = call(gateway, "GET", "/buzzstream/websites", None, {"X-Gateway-User": "bob"})
    assert assert_problem(body, 401)["code"] == "caller_unauthorized"


def test_onboarding_never_replaces_a_token_silently(gateway: Gateway, buzz: Standins) -> None:
    _, _, body = call(gateway, "GET", f"{START}?user=bob", None, ALICE_APP)
    assert assert_problem(body, 403)["code"] == "forbidden"  # not its user

    assert onboard(gateway, "alice", "buzz-alice", ALICE_APP) == 200
    assert principal_of_a_call_as(gateway, buzz, "alice") == "buzz-alice"

    # Another account for alice: refused unless asked for, by a caller allowed for her.
    _, _, body = call(gateway, "GET", f"{START}?user=alice", None, ALICE_APP)
    problem = assert_problem(body, 409)
    assert problem["code"] == "conflict" and "replace=true" in problem["detail"]
    _, _, body = call(gateway, "GET", f"{START}?user=alice&replace=maybe", None, ALICE_APP)
    assert assert_problem(body, 400)["code"] == "invalid_request"
    assert principal_of_a_call_as(gateway, buzz, "alice") == "buzz-alice"  # unchanged

    assert onboard(gateway, "alice", "buzz-alice-2", ADMIN, "&replace=true") == 200
    assert principal_of_a_call_as(gateway, buzz, "alice") == "buzz-alice-2"
    metrics = call(gateway, "GET", "/metrics")[2].decode()
    assert metric(metrics, "gateway_oauth_token_replacements_total", upstream="buzzstream") == 1
    (replaced,) = [line for line in gateway.log_lines() if line["event"] == "oauth_token_replaced"]
    assert (replaced["user"], replaced["caller"], replaced["level"]) == (
        "alice",
        "admin",
        "warning",
    )


def test_a_token_stored_while_an_onboarding_waited_is_not_replaced(gateway: Gateway) -> None:
    """Both onboardings of dave started before either finished: the later callback
    finds a token it was not asked to replace."""
    starts = []
    for _ in range(2):
        status, headers, _ = call(gateway, "GET", f"{START}?user=dave", None, ADMIN)
        assert status == 302
        starts.append(urlsplit(headers["location"]))
    backs = []
    for n, approve in enumerate(starts):
        _, headers, _ = call(f"http://{approve.netloc}", "GET",
                             f"{approve.path}?{approve.query}&user=buzz-dave-{n}")  # fmt: skip
        backs.append(urlsplit(headers["location"]))
    assert call(gateway, "GET", f"{backs[0].path}?{backs[0].query}")[0] == 200
    _, _, body = call(gateway, "GET", f"{backs[1].path}?{backs[1].query}")
    assert assert_problem(body, 409)["code"] == "conflict"


def test_concurrent_onboardings_are_paced_by_the_quota(gateway: Gateway, buzz: Standins) -> None:
    """requestToken is a BuzzStream call like any other: 5/s per account, paced by the
    gateway, never suspended by BuzzStream (before: 5 of 10 were suspended)."""
    buzz.reset()

    def start(n: int) -> tuple[int, dict[str, str]]:
        status, headers, _ = call(gateway, "GET", f"{START}?user=paced-{n}", None, ADMIN)
        return status, headers

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(start, range(10)))
    assert [status for status, _ in results] == [302] * 10
    stats = buzz.stats("buzzstream")
    seen = [s for s in buzz.seen("buzzstream") if s["path"].endswith("/requestToken")]
    assert len(seen) == 10
    assert stats.get("suspensions", 0) == 0, stats
    assert all(s["extra"]["suspended_steps"] == 0 for s in seen), json.dumps(seen)[:500]
    assert all("ratelimit" in headers for _, headers in results)  # the policy applied
