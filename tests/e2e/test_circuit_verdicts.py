"""What counts against an upstream's breaker, in-process against the real stand-ins.

Timeouts and refused connections count as failures; 4xx replies, documented
domain errors and the upstream's refusal of our credentials do not; a call the
quota refused never reached the upstream and counts neither way.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from gateway.core.circuit import CircuitPolicy
from gateway.core.retry import RetryPolicy
from gateway.server.app import create_app
from gateway.server.keys import STATE
from tests.conftest import make_config, problem_reply
from tests.harness import Standins, free_port

POLICY = CircuitPolicy(failures=2, open_for=30.0)


def circuit_app(standins: Standins, **changes: Any) -> Any:
    config = make_config(standins)
    ups = dict(config.upstreams)
    for name in ("bizzstream", "beeswax"):
        ups[name] = replace(ups[name], circuit=POLICY, **changes.get(name, {}))
    return create_app(replace(config, upstreams=ups))


async def test_timeouts_and_refused_connections_open_it(
    aiohttp_client: Any, fresh_standins: Standins
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    app = circuit_app(
        fresh_standins,
        bizzstream={"head_timeout": 0.2},
        beeswax={"base_url": dead},
    )
    client = await aiohttp_client(app)
    for _ in range(2):
        await problem_reply(await client.get("/bizzstream/__fault/sleep?seconds=1"), 504,
                            "bizzstream")  # fmt: skip
    problem = await problem_reply(await client.get("/bizzstream/api/v1/documents"), 503,
                                  "bizzstream")  # fmt: skip
    assert "circuit open" in problem["detail"]
    # the login cannot connect (503), then the auth's login back-off answers 502
    statuses = [(await client.get("/beeswax/rest/advertiser")).status for _ in range(2)]
    assert statuses == [503, 502]
    assert app[STATE].breakers["beeswax"].circuit.state == "open"


async def test_4xx_domain_errors_and_quota_refusals_do_not_count(
    aiohttp_client: Any, fresh_standins: Standins
) -> None:
    app = circuit_app(fresh_standins)
    client = await aiohttp_client(app)
    for _ in range(4):
        resp = await client.get("/beeswax/rest/advertiser/999")  # 404 not_found
        assert resp.status == 404
        resp = await client.get("/bizzstream/__fault/text/404")
        assert resp.status == 404
    for _ in range(4):  # report queue: 1/s, reject: the quota refuses, nothing is sent
        await client.get("/beeswax/rest/report_queue")
    breakers = app[STATE].breakers
    assert breakers["beeswax"].circuit.state == "closed"
    assert breakers["bizzstream"].circuit.state == "closed"
    assert breakers["beeswax"].circuit.consecutive == 0


async def test_a_circuit_that_opens_during_a_back_off_stops_the_resends(
    aiohttp_client: Any, fresh_standins: Standins
) -> None:
    """While open, no upstream traffic: a call already waiting to resend gives up."""
    retry = RetryPolicy(attempts=3, backoff_base=0.5, backoff_max=0.5)
    app = circuit_app(fresh_standins, bizzstream={"retry": retry})
    client = await aiohttp_client(app)
    app[STATE].retries["bizzstream"].rng = lambda: 1.0  # back-off: exactly 0.5 s
    fresh_standins.admin("bizzstream", "/__standin/outage", {"status": 503})
    path = "/api/v1/documents"

    def sent() -> int:
        return sum(1 for s in fresh_standins.seen("bizzstream") if s["path"].endswith(path))

    call = asyncio.ensure_future(client.get("/bizzstream" + path))
    for _ in range(200):  # the first attempt has been answered: the call is backing off
        if sent():
            break
        await asyncio.sleep(0.02)
    breaker = app[STATE].breakers["bizzstream"]
    for _ in range(POLICY.failures):  # other calls failed meanwhile: the circuit opens
        breaker.settle(False, False)
    assert breaker.circuit.state == "open"
    resp = await call
    assert resp.status == 502  # the upstream's own 503, as the call's answer
    await asyncio.sleep(0.6)
    assert sent() == 1  # without the check: 3 (two resends into an open circuit)


async def test_streamone_errors_inside_a_200_count_by_their_meaning(
    aiohttp_client: Any, fresh_standins: Standins
) -> None:
    """Domain statuses in a 200 envelope (ITEM_NOT_FOUND, ACCESS_DENIED, INPUT_ERROR,
    INVALID_ACTION) are the upstream answering; INTERNAL_ERROR is it failing."""
    config = make_config(fresh_standins)
    ups = dict(config.upstreams)
    ups["streamone"] = replace(ups["streamone"], circuit=POLICY)
    app = create_app(replace(config, upstreams=ups))
    client = await aiohttp_client(app)
    breaker = app[STATE].breakers["streamone"]
    for _ in range(2):
        assert (await client.post("/streamone/item/view", data={"id": "nope"})).status == 404
        assert (await client.post("/streamone/account/delete")).status == 403
        assert (await client.post("/streamone/item/create")).status == 400
        assert (await client.post("/streamone/nope/nothing")).status == 404
    assert breaker.circuit.state == "closed" and breaker.circuit.consecutive == 0
    for _ in range(POLICY.failures):
        assert (await client.post("/streamone/item/crash")).status == 502
    assert breaker.circuit.state == "open"
