"""SIGTERM, end to end with a real gateway process (issue 6 §8).

Readiness fails at once, calls in flight (an upstream call that takes 2 s, and a
call waiting on a rate-limit delay) finish, a late call gets a 503 problem, and
the process exits 0. Past ``shutdown_grace`` the rest is cut and it still exits 0.
"""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_problem
from tests.harness import Gateway, Standins, gateway_env, launch_gateway
from tests.ops.support import call, config_with, wait_for

SLOW = "/bizzstream/__fault/sleep?seconds=2"


def _arrived(standins: Standins, marker: str) -> bool:
    return any(
        {k.lower(): v for k, v in s["headers"].items()}.get("x-request-id") == marker
        for s in standins.seen("bizzstream")
    )


def _exit_code(gw: Gateway, timeout: float = 25) -> int:
    return gw.proc.wait(timeout)


@pytest.mark.e2e
def test_sigterm_fails_readiness_finishes_inflight_call_and_exits_0(
    fresh_standins: Standins,
) -> None:
    gw = launch_gateway(gateway_env(fresh_standins))
    try:
        assert call(gw.url + "/readyz")[0] == 200
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(call, gw.url + SLOW, headers={"X-Request-Id": "drain-slow-1"})
            assert wait_for(lambda: _arrived(fresh_standins, "drain-slow-1"))
            gw.proc.send_signal(signal.SIGTERM)
            # Readiness fails at once; the listener still answers during the drain.
            assert wait_for(lambda: call(gw.url + "/readyz")[0] == 503, timeout=1.5)
            status, _, body = call(gw.url + "/readyz")
            assert json.loads(body)["checks"]["shutdown"] == "in progress"
            assert call(gw.url + "/healthz")[0] == 200
            late_status, _, late_body = call(gw.url + "/bizzstream/__fault/echo")
            assert late_status == 503
            assert assert_problem(late_body, 503)["code"] == "upstream_unavailable"
            assert gw.proc.poll() is None, "the gateway left before its call finished"
            status, _, body = slow.result(timeout=15)
        assert status == 200, body
        assert json.loads(body) == {"slept": 2}
        assert _exit_code(gw) == 0
        events = [line.get("event") for line in gw.log_lines()]
        assert "draining" in events and "stopped" in events
        assert "drain_incomplete" not in events
    finally:
        gw.stop()


def _delay_policy(data: dict[str, Any]) -> None:
    data["upstreams"]["bizzstream"]["rate_limits"] = [
        {"name": "drain_test", "match": "/__fault/*", "limit": 1, "period": "3s",
         "burst": 1, "on_exceed": "delay", "max_delay": "10s"}
    ]  # fmt: skip


@pytest.mark.e2e
def test_sigterm_lets_a_call_waiting_on_a_rate_limit_delay_finish(
    fresh_standins: Standins, tmp_path: Path
) -> None:
    gw = launch_gateway(gateway_env(fresh_standins), config_with(tmp_path, _delay_policy))
    try:
        first = call(gw.url + "/bizzstream/__fault/echo", headers={"X-Request-Id": "rl-first"})
        assert first[0] == 200
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(
                call, gw.url + "/bizzstream/__fault/echo", headers={"X-Request-Id": "rl-waiting"}
            )
            # The second call is inside the gateway, waiting for its slot.
            assert wait_for(lambda: b'inflight_requests{upstream="bizzstream"} 1.0' in
                            call(gw.url + "/metrics")[2])  # fmt: skip
            assert not _arrived(fresh_standins, "rl-waiting")
            gw.proc.send_signal(signal.SIGTERM)
            assert wait_for(lambda: call(gw.url + "/readyz")[0] == 503, timeout=1.5)
            status, _, body = waiting.result(timeout=20)
        assert status == 200, body
        assert _exit_code(gw) == 0
        lines = {line.get("request_id"): line for line in gw.log_lines()}
        assert lines["rl-waiting"]["ratelimit_delay_ms"] > 1000
        assert _arrived(fresh_standins, "rl-waiting")
    finally:
        gw.stop()


@pytest.mark.e2e
def test_calls_past_the_grace_period_are_cut_and_the_exit_is_still_0(
    fresh_standins: Standins, tmp_path: Path
) -> None:
    def short_grace(data: dict[str, Any]) -> None:
        data["shutdown_grace"] = "1s"

    gw = launch_gateway(gateway_env(fresh_standins), config_with(tmp_path, short_grace))
    try:
        with ThreadPoolExecutor(1) as pool:
            stuck = pool.submit(
                call,
                gw.url + "/bizzstream/__fault/sleep?seconds=30",
                headers={"X-Request-Id": "drain-stuck"},
            )
            assert wait_for(lambda: _arrived(fresh_standins, "drain-stuck"))
            sent = time.monotonic()
            gw.proc.send_signal(signal.SIGTERM)
            assert _exit_code(gw, timeout=20) == 0
            # It did not wait for the 30 s call (generous bound: 2 cores, CI).
            assert time.monotonic() - sent < 15
            try:
                status = stuck.result(timeout=10)[0]
            except OSError:
                status = 0  # the connection was closed under it
            assert status != 200
        events = [line.get("event") for line in gw.log_lines()]
        assert "drain_incomplete" in events
    finally:
        gw.stop()
