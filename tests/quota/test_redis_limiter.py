"""The Redis limiter against a real redis-server: burst, refill, atomicity, shadow..."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from gateway.core.quota import evaluate, parse_reply, script_args
from gateway.metrics import create_metrics
from gateway.server.limiter import plan
from tests.quota.conftest import Factory, policy, sample

UP, ACCT = "buzzstream", "acct"
KEY = "gw:{buzzstream:acct}:per_user"


async def test_burst_then_refused(make_limiter: Factory) -> None:
    lim = await make_limiter()
    p = policy(limit=5, period=60, burst=5)  # T = 12 s: no refill during the test
    ds = [await lim.acquire(UP, [p], ACCT, None) for _ in range(6)]
    assert [d.allowed for d in ds] == [True] * 5 + [False]
    assert ds[5].policy == "per_user"
    assert ds[5].retry_after == pytest.approx(12, abs=0.05)
    assert ds[0].headers == (
        ("RateLimit-Policy", '"per_user";q=5;w=60'),
        ("RateLimit", '"per_user";r=4;t=12'),
    )
    assert ds[5].headers[1] == ("RateLimit", '"per_user";r=0;t=60')


async def test_refill(make_limiter: Factory) -> None:
    lim = await make_limiter()
    p = policy(limit=20, period=1, burst=1)  # one call per 50 ms
    assert (await lim.acquire(UP, [p], ACCT, None)).allowed
    refused = await lim.acquire(UP, [p], ACCT, None)
    assert not refused.allowed and 0 < refused.retry_after <= 0.05
    await asyncio.sleep(refused.retry_after)
    assert (await lim.acquire(UP, [p], ACCT, None)).allowed


async def test_refused_calls_consume_nothing(
    make_limiter: Factory, raw_redis: aioredis.Redis
) -> None:
    lim = await make_limiter()
    p = policy(limit=1, period=60, burst=1)
    assert (await lim.acquire(UP, [p], ACCT, None)).allowed
    value = await raw_redis.get(KEY)
    for _ in range(5):
        assert not (await lim.acquire(UP, [p], ACCT, None)).allowed
    assert await raw_redis.get(KEY) == value

    slow = policy("slow", limit=1, period=60, burst=1, on_exceed="delay", max_delay=1.0)
    assert (await lim.acquire(UP, [slow], ACCT, None)).allowed
    slow_value = await raw_redis.get("gw:{buzzstream:acct}:slow")
    refused = await lim.acquire(UP, [slow], ACCT, None)  # would wait 60 s > max_delay
    assert not refused.allowed and refused.retry_after == pytest.approx(59, abs=0.05)
    assert await raw_redis.get("gw:{buzzstream:acct}:slow") == slow_value


@pytest.mark.parametrize("narrow_first", [False, True])
async def test_one_policy_refusing_charges_no_other(
    make_limiter: Factory, raw_redis: aioredis.Redis, narrow_first: bool
) -> None:
    lim = await make_limiter()
    wide = policy("wide", limit=100, period=60, burst=100)
    narrow = policy("narrow", limit=1, period=60, burst=1)
    both = [narrow, wide] if narrow_first else [wide, narrow]
    assert (await lim.acquire(UP, both, ACCT, None)).allowed
    before = await raw_redis.mget(["gw:{buzzstream:acct}:wide", "gw:{buzzstream:acct}:narrow"])
    refused = await lim.acquire(UP, both, ACCT, None)
    assert not refused.allowed and refused.policy == "narrow"
    after = await raw_redis.mget(["gw:{buzzstream:acct}:wide", "gw:{buzzstream:acct}:narrow"])
    assert after == before and None not in after


async def test_shadow_counts_and_logs_but_never_refuses(
    make_limiter: Factory, raw_redis: aioredis.Redis
) -> None:
    metrics = create_metrics()
    lim = await make_limiter(metrics=metrics)
    trial = policy("trial", limit=1, period=60, burst=1, shadow=True)
    with capture_logs() as logs:
        decisions = [await lim.acquire(UP, [trial], ACCT, None) for _ in range(3)]
    assert all(d.allowed and d.delay == 0 and d.headers == () for d in decisions)
    first = decisions[0].holds[0].expected_us
    assert int(await raw_redis.get("gw:{buzzstream:acct}:trial")) == first  # charged once
    shadow = "gateway_ratelimit_shadow_decisions_total"
    assert sample(metrics, shadow, upstream=UP, policy="trial", decision="allowed") == 1
    assert sample(metrics, shadow, upstream=UP, policy="trial", decision="rejected") == 2
    assert sample(
        metrics, "gateway_ratelimit_decisions_total", upstream=UP, policy="trial",
        decision="rejected",
    ) == 0  # fmt: skip
    refusals = [e for e in logs if e["event"] == "ratelimit_shadow_refusal"]
    assert len(refusals) == 2 and refusals[0]["policy"] == "trial"


async def test_delay_mode_spaces_calls_from_two_replicas(make_limiter: Factory) -> None:
    a, b = await make_limiter(), await make_limiter()
    p = policy(limit=5, period=1, burst=1, on_exceed="delay")
    loop = asyncio.get_running_loop()

    async def one(lim: object) -> float:
        d = await lim.acquire(UP, [p], ACCT, None)  # type: ignore[attr-defined]
        assert d.allowed
        return float(loop.time() + d.delay)

    sends = sorted(await asyncio.gather(*(one(a if i % 2 else b) for i in range(10))))
    gaps = [y - x for x, y in itertools.pairwise(sends)]
    assert all(gap == pytest.approx(0.2, abs=0.04) for gap in gaps), gaps


async def test_the_script_agrees_with_the_python_model(make_limiter: Factory) -> None:
    """Each reply equals core.quota.evaluate() on the values the script read."""
    lim = await make_limiter()
    rng = random.Random(4)
    pool = [
        policy("a", limit=3, period=1, burst=2, on_exceed="delay", max_delay=0.5),
        policy("b", limit=10, period=1, burst=1),
        policy("c", limit=2, period=1, burst=1, shadow=True),
        policy("d", limit=1, period=1, burst=1, shadow=True, on_exceed="delay", max_delay=0.3),
    ]
    for _ in range(60):
        chosen = rng.sample(pool, rng.randint(1, len(pool)))
        call = plan("gw", UP, chosen, ACCT, None)
        reply = await lim.runner.submit(
            (call.cooldown, *call.keys), ["acquire", script_args(call.limits)]
        )
        got = parse_reply(reply, call.limits, call.keys)
        stored = [p.stored_us for p in got.policies]
        assert got == evaluate(got.now_us, call.limits, call.keys, stored, 0)
        await asyncio.sleep(rng.choice([0, 0, 0.01, 0.05]))


async def test_the_script_agrees_with_the_python_model_during_a_cooldown(
    make_limiter: Factory, raw_redis: aioredis.Redis
) -> None:
    """Same, with a cool-down running that is longer than some max_delays:
    both name the cool-down as the cause of those refusals."""
    lim = await make_limiter()
    pool = [
        policy("short", limit=3, period=1, burst=2, on_exceed="delay", max_delay=0.5),
        policy("long", limit=10, period=1, burst=1, on_exceed="delay", max_delay=5.0),
        policy("s", limit=2, period=1, burst=1, shadow=True, on_exceed="delay", max_delay=0.3),
    ]
    await lim.cooldown(UP, ACCT, 2.0)
    deciders = set()
    for chosen in [pool[:1], pool[1:2], pool, pool[1:], pool[::2], pool[1:2], pool[:1]]:
        call = plan("gw", UP, chosen, ACCT, None)
        until = int(await raw_redis.get(call.cooldown) or 0)
        reply = await lim.runner.submit(
            (call.cooldown, *call.keys), ["acquire", script_args(call.limits)]
        )
        got = parse_reply(reply, call.limits, call.keys)
        stored = [p.stored_us for p in got.policies]
        assert got == evaluate(got.now_us, call.limits, call.keys, stored, until)
        deciders.add(got.decider)
    assert deciders == {None, "cooldown"}


async def test_survives_script_flush(make_limiter: Factory, raw_redis: aioredis.Redis) -> None:
    lim = await make_limiter()
    p = policy(limit=100, period=1)
    assert (await lim.acquire(UP, [p], ACCT, None)).allowed
    await raw_redis.script_flush()
    trips = lim.runner.round_trips
    assert (await lim.acquire(UP, [p], ACCT, None)).allowed
    assert lim.runner.round_trips == trips + 2  # NOSCRIPT, then load and run again
    assert (await raw_redis.script_exists(lim.runner.sha)) == [True]


async def test_cooldown_is_shared_across_replicas(make_limiter: Factory) -> None:
    metrics = create_metrics()
    a, b = await make_limiter(metrics=metrics), await make_limiter()
    await a.cooldown(UP, ACCT, 1.0)
    assert sample(metrics, "gateway_upstream_cooldowns_total", upstream=UP) == 1
    held = await b.acquire(UP, [policy(on_exceed="delay")], ACCT, None)
    assert held.allowed and held.delay == pytest.approx(1.0, abs=0.1)
    refused = await b.acquire(UP, [policy("r", on_exceed="reject")], ACCT, None)
    assert not refused.allowed and refused.retry_after == pytest.approx(1.0, abs=0.1)
    bare = await b.acquire(UP, [], ACCT, None)
    assert not bare.allowed and bare.policy == "cooldown"
    assert (await b.acquire(UP, [], "another-account", None)).allowed


async def test_release_gives_back_only_the_last_reservation(
    make_limiter: Factory, raw_redis: aioredis.Redis
) -> None:
    lim = await make_limiter()
    p = policy(limit=5, period=1, burst=1, on_exceed="delay")
    d1, d2, d3 = [await lim.acquire(UP, [p], ACCT, None) for _ in range(3)]
    tail = await raw_redis.get(KEY)
    await lim.release(UP, d2)  # in the middle: later slots are already fixed
    assert await raw_redis.get(KEY) == tail
    await lim.release(UP, d3)  # the tail: its slot is free again
    assert int(await raw_redis.get(KEY)) == d2.holds[0].expected_us
    again = await lim.acquire(UP, [p], ACCT, None)
    assert again.delay == pytest.approx(d3.delay, abs=0.05)
    assert d1.delay == 0


async def test_user_scope_is_keyed_by_user_and_skipped_without_one(
    make_limiter: Factory, raw_redis: aioredis.Redis
) -> None:
    lim = await make_limiter()
    fair = policy("fair", scope="user", limit=1, period=60, burst=1)
    assert (await lim.acquire(UP, [fair], ACCT, "alice")).allowed
    assert not (await lim.acquire(UP, [fair], ACCT, "alice")).allowed
    assert (await lim.acquire(UP, [fair], ACCT, "bob")).allowed
    anonymous = await lim.acquire(UP, [fair], ACCT, None)
    assert anonymous.allowed and anonymous.headers == ()
    assert sorted(await raw_redis.keys("gw:*")) == [
        b"gw:{buzzstream:acct}:fair:alice",
        b"gw:{buzzstream:acct}:fair:bob",
    ]


@pytest.mark.parametrize("batch", [True, False])
async def test_concurrent_decisions_stay_exact_batched_or_not(
    make_limiter: Factory, batch: bool
) -> None:
    # Unbatched, 50 calls open 50 connections at once: give them time to.
    lim = await make_limiter(batch=batch, timeout=0.05 if batch else 2.0)
    p = policy(limit=10, period=60, burst=10)
    decisions = await asyncio.gather(*(lim.acquire(UP, [p], ACCT, None) for _ in range(50)))
    assert sum(d.allowed for d in decisions) == 10
    if batch:
        assert lim.runner.round_trips < 10  # they shared pipelines
    else:
        assert lim.runner.round_trips == 50
