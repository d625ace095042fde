"""The circuit breaker per upstream, end to end (issue 15, part 2).

A real gateway process (Redis-backed limits) in front of the real stand-ins.
BizzStream's stand-in is switched to an outage (``POST /__standin/outage``,
every request answers 503): the breaker opens after its configured run of 3
failures, then refuses at once with a 503 ``upstream_unavailable`` problem and
``Retry-After``, and sends nothing upstream; Beeswax, on its own breaker, is
unaffected and as fast as before. Healed, the first call after ``open_for`` is
the probe, and the breaker closes.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Gateway, Standins, call, gateway_env, running_gateway, write_config

pytestmark = pytest.mark.e2e
RUN = 3
OPEN_FOR = 1.5
DOCS = "/bizzstream/api/v1/documents?ddName=cb"
OTHER = "/beeswax/rest/advertiser"


def configure(data: dict[str, Any]) -> None:
    for name in ("bizzstream", "beeswax"):
        data["upstreams"][name]["circuit"] = {
            "failures": RUN, "open_for": f"{OPEN_FOR}s", "half_open_probes": 1,
        }  # fmt: skip


@pytest.fixture
def gateway(fresh_standins: Standins, redis_flushed: str, tmp_path: Path) -> Iterator[Gateway]:
    env = gateway_env(fresh_standins, redis_flushed)
    with running_gateway(env, write_config(tmp_path, configure)) as gw:
        yield gw
    fresh_standins.admin("bizzstream", "/__standin/outage", {})


def reached(standins: Standins) -> int:
    return len([s for s in standins.seen("bizzstream") if s["path"].endswith("/documents")])


def metric(gw: Gateway, name: str, **labels: str) -> float:
    text = call(gw, "GET", "/metrics")[2].decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels}")


def latency(gw: Gateway, n: int = 15) -> float:
    took = []
    for _ in range(n):
        started = time.perf_counter()
        assert call(gw, "GET", OTHER)[0] == 200
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def test_opens_after_the_run_fails_fast_spares_the_others_and_closes_when_healed(
    gateway: Gateway, fresh_standins: Standins
) -> None:
    gw, standins = gateway, fresh_standins
    assert call(gw, "GET", DOCS)[0] == 200
    before = latency(gw)

    standins.admin("bizzstream", "/__standin/outage", {"status": 503})
    outage_at = time.monotonic()
    statuses = []
    for _ in range(RUN):
        status, _, body = call(gw, "GET", DOCS)
        statuses.append((status, json.loads(body)["code"]))
    assert statuses == [(502, "upstream_error")] * RUN  # the upstream's 503s, mapped
    sent = reached(standins)

    started = time.perf_counter()
    status, headers, body = call(gw, "GET", DOCS)
    fast = time.perf_counter() - started
    opened_after = time.monotonic() - outage_at
    problem = json.loads(body)
    assert (status, problem["code"], problem["upstream"]) == (503, "upstream_unavailable",
                                                              "bizzstream")  # fmt: skip
    assert "circuit open" in problem["detail"]
    assert problem["upstream_status"] is None  # the gateway's refusal: nothing was sent
    assert 1 <= int(headers["retry-after"]) <= OPEN_FOR + 1
    for _ in range(5):
        assert call(gw, "GET", DOCS)[0] == 503
    assert reached(standins) == sent  # no upstream traffic while open
    assert metric(gw, "gateway_circuit_state", upstream="bizzstream") == 1
    assert metric(gw, "gateway_circuit_state", upstream="beeswax") == 0

    during = latency(gw)  # the other upstream: unaffected
    assert during < before * 3 + 0.05, (before, during)

    standins.admin("bizzstream", "/__standin/outage", {})
    healed_at = time.monotonic()
    while call(gw, "GET", DOCS)[0] != 200:
        assert time.monotonic() - healed_at < OPEN_FOR + 3, "the breaker did not close"
        time.sleep(0.05)
    closed_after = time.monotonic() - healed_at
    assert metric(gw, "gateway_circuit_state", upstream="bizzstream") == 0
    for state in ("open", "half_open", "closed"):
        assert metric(gw, "gateway_circuit_transitions_total", upstream="bizzstream",
                      to=state) == 1  # fmt: skip
    assert metric(gw, "gateway_circuit_transitions_total", upstream="beeswax", to="open") == 0
    logged = [line["event"] for line in gw.log_lines() if line.get("logger") == "gateway.circuit"
              or str(line.get("event", "")).startswith("circuit_")]  # fmt: skip
    assert logged == ["circuit_open", "circuit_half_open", "circuit_closed"], logged
    print(
        f"\ncircuit: opened {opened_after * 1000:.0f} ms after the outage began ({RUN} calls), "
        f"refusal in {fast * 1000:.1f} ms, closed {closed_after:.2f} s after healing "
        f"(open_for {OPEN_FOR}s); other upstream p50 {before * 1000:.1f} ms before, "
        f"{during * 1000:.1f} ms while open"
    )
