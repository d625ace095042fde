"""Retries the quota can see (issue 15, part 1), with real gateway processes and Redis.

The stand-ins count what reaches them, so "never twice" is counted, not assumed:
their fault switch (``POST /__standin/outage``) makes every call fail with a
status (and a ``Retry-After``) or a dropped connection, and a late listener
makes a port refuse connections until it opens.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.e2e.late_listener import LateListener
from tests.harness import (
    Gateway,
    Standins,
    call,
    gateway_env,
    launch_standins,
    running_gateway,
    write_config,
)

pytestmark = pytest.mark.e2e
DOCS = "/bizzstream/api/v1/documents?ddName=retry"
JSON = {"Content-Type": "application/json"}
RETRY = {"attempts": 3, "backoff_base": "50ms", "backoff_max": "200ms", "deadline": "5s",
         "budget": {"ratio": 1.0, "min": 1000}}  # fmt: skip
WIDE = [{"name": "wide", "limit": 100000, "period": "1s", "on_exceed": "reject"}]


@pytest.fixture(scope="module")
def standins() -> Iterator[Standins]:
    s = launch_standins({"beeswax": {"login_limit_per_minute": 10_000},
                         "buzzstream": {"rate_per_second": 1000}})  # fmt: skip
    yield s
    s.stop()


@pytest.fixture
def fresh(standins: Standins) -> Iterator[Standins]:
    standins.reset()
    yield standins
    standins.reset()  # heals every outage


def with_retries(retry: dict[str, Any]) -> Any:
    def change(data: dict[str, Any]) -> None:
        for name in ("bizzstream", "buzzstream"):
            data["upstreams"][name]["retry"] = retry
        data["upstreams"]["bizzstream"]["rate_limits"] = WIDE

    return change


@pytest.fixture
def gateway(fresh: Standins, redis_flushed: str, tmp_path: Path) -> Iterator[Gateway]:
    env = gateway_env(fresh, redis_flushed)
    with running_gateway(env, write_config(tmp_path, with_retries(RETRY))) as gw:
        yield gw


def reached(standins: Standins, upstream: str, method: str, suffix: str) -> list[dict[str, Any]]:
    return [s for s in standins.seen(upstream) if s["method"] == method
            and s["path"].endswith(suffix)]  # fmt: skip


def metric(gw: Gateway, name: str, **labels: str) -> float:
    for line in call(gw, "GET", "/metrics")[2].decode().splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels}")


def access_line(gw: Gateway, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5  # the line is written as the reply goes out
    while True:
        lines = [x for x in gw.log_lines() if x.get("event") == "request"
                 and x.get("request_id") == request_id]  # fmt: skip
        if lines or time.monotonic() > deadline:
            assert len(lines) == 1
            return lines[0]
        time.sleep(0.05)


def test_a_get_is_retried_on_503_within_attempts_and_each_attempt_passes_the_quota(
    gateway: Gateway, fresh: Standins
) -> None:
    fresh.admin("bizzstream", "/__standin/outage", {"status": 503})
    allowed = metric(
        gateway, "gateway_ratelimit_decisions_total", policy="wide", decision="allowed"
    )
    status, _headers, _ = call(gateway, "GET", DOCS, None, {"X-Request-Id": "retry-get-1"})
    assert status == 502
    assert len(reached(fresh, "bizzstream", "GET", "/documents")) == 3  # attempts: 3
    assert metric(gateway, "gateway_upstream_retries_total", upstream="bizzstream",
                  reason="503") == 2  # fmt: skip
    after = metric(gateway, "gateway_ratelimit_decisions_total", policy="wide", decision="allowed")
    assert after - allowed == 3  # every attempt passed the limiter
    assert access_line(gateway, "retry-get-1")["retries"] == 2

    fresh.admin("bizzstream", "/__standin/outage", {})
    status, _, _ = call(gateway, "GET", DOCS, None, {"X-Request-Id": "retry-get-2"})
    assert status == 200 and access_line(gateway, "retry-get-2")["retries"] == 0


def test_each_attempt_is_signed_again(gateway: Gateway, fresh: Standins) -> None:
    fresh.admin("buzzstream", "/__standin/outage", {"status": 502})
    assert call(gateway, "GET", "/buzzstream/websites")[0] == 502
    seen = reached(fresh, "buzzstream", "GET", "/websites")
    nonces = {s["headers"]["Authorization"].split('oauth_nonce="')[1].split('"')[0]
              for s in seen}  # fmt: skip
    assert len(seen) == 3 and len(nonces) == 3


def test_a_post_is_never_sent_twice(gateway: Gateway, fresh: Standins) -> None:
    fresh.admin("bizzstream", "/__standin/outage", {"mode": "close"})
    assert call(gateway, "GET", DOCS)[0] == 503  # the connection dropped after the write:
    assert len(reached(fresh, "bizzstream", "GET", "/documents")) == 1  # sent, never resent
    body = json.dumps({"n": 1}).encode()
    # (the 429 last: it puts a cool-down on the account)
    for outage in ({"status": 503}, {"mode": "close"}, {"status": 429, "retry_after": 1}):
        fresh.reset()
        fresh.admin("bizzstream", "/__standin/outage", outage)
        status, _, _ = call(gateway, "POST", DOCS, body, JSON)
        assert status >= 429, outage
        assert len(reached(fresh, "bizzstream", "POST", "/documents")) == 1, outage


def test_retry_after_is_honoured_and_refused_past_the_deadline(
    gateway: Gateway, fresh: Standins
) -> None:
    fresh.admin("bizzstream", "/__standin/outage", {"status": 429, "retry_after": 1})
    status, _, _ = call(gateway, "GET", DOCS)
    assert status == 429
    arrivals = [s["arrived"] for s in reached(fresh, "bizzstream", "GET", "/documents")]
    assert len(arrivals) == 3
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(arrivals)), arrivals

    time.sleep(1.1)  # the last 429 put a 1 s cool-down on the account
    fresh.reset()
    fresh.admin("bizzstream", "/__standin/outage", {"status": 429, "retry_after": 30})
    started = time.monotonic()
    status, headers, body = call(gateway, "GET", DOCS)
    assert time.monotonic() - started < 2
    assert status == 429 and headers["retry-after"] == "30"
    assert json.loads(body)["retry_after"] == 30
    assert len(reached(fresh, "bizzstream", "GET", "/documents")) == 1


def test_a_post_whose_connection_was_refused_is_sent_once_it_opens(
    fresh: Standins, redis_flushed: str, tmp_path: Path
) -> None:
    target = urlsplit(fresh.urls["bizzstream"])
    late = LateListener(target.hostname or "127.0.0.1", target.port or 80)
    retry = {**RETRY, "attempts": 20, "backoff_base": "100ms", "backoff_max": "300ms"}
    env = gateway_env(fresh, redis_flushed, BIZZSTREAM_URL=f"http://127.0.0.1:{late.port}")
    try:
        with running_gateway(env, write_config(tmp_path, with_retries(retry))) as gw:
            late.open_after(0.5)
            status, _, _ = call(gw, "POST", DOCS, b'{"n": 2}', {**JSON, "X-Request-Id": "late"})
            assert status == 201
            posts = reached(fresh, "bizzstream", "POST", "/documents")
            assert len(posts) == 1 and json.loads(posts[0]["body"]) == {"n": 2}
            resent = access_line(gw, "late")["retries"]
            assert resent >= 1
            assert metric(gw, "gateway_upstream_retries_total", upstream="bizzstream",
                          reason="connect_failed") == resent  # fmt: skip
    finally:
        late.close()


def test_the_budget_caps_resends_under_an_outage(
    fresh: Standins, redis_flushed: str, tmp_path: Path
) -> None:
    calls = 40
    resends = {}
    for label, budget in (("without budget", {"ratio": 1.0, "min": 1000}),
                          ("budget 10%, min 2", {"ratio": 0.1, "min": 2})):  # fmt: skip
        fresh.reset()
        fresh.admin("bizzstream", "/__standin/outage", {"status": 503})
        retry = {**RETRY, "backoff_base": "1ms", "backoff_max": "2ms", "budget": budget}
        env = gateway_env(fresh, redis_flushed)
        with running_gateway(env, write_config(tmp_path, with_retries(retry))) as gw:
            for _ in range(calls):
                assert call(gw, "GET", DOCS)[0] == 502
            sent = len(reached(fresh, "bizzstream", "GET", "/documents"))
            resends[label] = sent - calls
            assert metric(gw, "gateway_upstream_retries_total", upstream="bizzstream",
                          reason="503") == sent - calls  # fmt: skip
    assert resends["without budget"] == 2 * calls
    assert resends["budget 10%, min 2"] <= 0.1 * calls + 2
    print(f"\nretries under an outage, {calls} GETs with attempts 3: {resends}")


def test_each_streamone_attempt_has_a_fresh_timestamp_and_signature(
    fresh: Standins, redis_flushed: str, tmp_path: Path
) -> None:
    """StreamOne has no nonce: its timestamp (seconds) is what makes a resend a new
    request. A Retry-After of 1 s puts the attempts in different seconds."""

    def change(data: dict[str, Any]) -> None:
        data["upstreams"]["streamone"]["retry"] = {**RETRY, "methods": ["POST"]}

    fresh.admin("streamone", "/__standin/outage", {"status": 429, "retry_after": 1})
    env = gateway_env(fresh, redis_flushed)
    with running_gateway(env, write_config(tmp_path, change)) as gw:
        assert call(gw, "POST", "/streamone/item/view", b"id=item1",
                    {"Content-Type": "application/x-www-form-urlencoded"})[0] == 429  # fmt: skip
    seen = reached(fresh, "streamone", "POST", "/item/view")
    queries = [dict(parse_qsl(s["query_string"])) for s in seen]
    assert len(queries) == 3
    assert len({q["timestamp"] for q in queries}) == 3  # signed again, each time
    assert len({q["signature"] for q in queries}) == 3
