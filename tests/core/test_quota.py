"""GCRA maths with an injected clock, exact key strings, header rendering."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from gateway.core.quota import (
    COOLDOWN,
    REJECTED,
    US,
    Hold,
    Limit,
    Outcome,
    compile_limit,
    cooldown_key,
    evaluate,
    extend_cooldown,
    holds,
    parse_reply,
    policy_key,
    ratelimit_headers,
    release_value,
    script_args,
    seconds,
)

MS = 1000
T0 = 1_700_000_000 * US  # an arbitrary "now", as Redis TIME gives it


@dataclass(frozen=True)
class P:
    """A RatePolicy stand-in (the core only reads these attributes)."""

    name: str = "per_user"
    limit: int = 5
    period: float = 1.0
    burst: int = 5
    on_exceed: str = "reject"
    max_delay: float = 10.0
    shadow: bool = False
    scope: str = "account"
    margin: float = 0.0


class Store:
    """Applies outcomes to a dict, as the script and the memory limiter do."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.cooldown = 0

    def call(self, now: int, *policies: P) -> Outcome:
        limits = [compile_limit(p) for p in policies]
        keys = [f"k:{p.name}" for p in policies]
        out = evaluate(now, limits, keys, [self.values.get(k, 0) for k in keys], self.cooldown)
        for p in out.policies:
            if p.committed:
                self.values[p.key] = p.tat_us
        return out


# --- compiling ---------------------------------------------------------------


def test_compile_limit_integers() -> None:
    lim = compile_limit(P(limit=5, period=1.0, burst=1, on_exceed="delay", max_delay=2.5))
    assert lim == Limit("per_user", 200_000, 1, False, 2_500_000, False, False, 5, 1)


def test_compile_limit_rounds_the_interval_up_never_faster() -> None:
    assert compile_limit(P(limit=3, period=1.0)).interval_us == 333_334


def test_compile_limit_margin_slows_pacing_but_not_the_advertised_quota() -> None:
    lim = compile_limit(P(limit=5, period=1.0, margin=0.05))
    assert (lim.interval_us, lim.quota, lim.window) == (210_000, 5, 1)


def test_compile_limit_share_divides_rate_and_burst() -> None:
    lim = compile_limit(P(limit=5, period=1.0, burst=5), share=2)
    assert (lim.interval_us, lim.burst, lim.quota, lim.window) == (400_000, 2, 5, 2)
    assert compile_limit(P(burst=1), share=3).burst == 1


def test_compile_limit_fractional_period_is_advertised_in_whole_seconds() -> None:
    lim = compile_limit(P(limit=1, period=0.5))
    assert (lim.quota, lim.window, lim.interval_us) == (2, 1, 500_000)


# --- keys --------------------------------------------------------------------


def test_exact_keys() -> None:
    assert (
        policy_key("gw", "buzzstream", "standin-consumer-key", "per_user", None)
        == "gw:{buzzstream:standin-consumer-key}:per_user"
    )
    assert (
        policy_key("gw", "buzzstream", "standin-consumer-key", "fair", "alice")
        == "gw:{buzzstream:standin-consumer-key}:fair:alice"
    )
    assert (
        cooldown_key("gw", "beeswax", "ops@example.com") == "gw:{beeswax:ops@example.com}:!cooldown"
    )


def test_key_parts_are_encoded_so_they_cannot_collide_or_break_the_tag() -> None:
    assert policy_key("gw", "up", "a:b}{c", "p!x", "u:1") == "gw:{up:a%3Ab%7D%7Bc}:p%21x:u%3A1"
    assert policy_key("gw", "up", "a", "cooldown", None) != cooldown_key("gw", "up", "a")


def test_all_keys_of_a_call_share_one_cluster_slot() -> None:
    keys = [
        policy_key("gw", "buzzstream", "k", "per_user", None),
        policy_key("gw", "buzzstream", "k", "fair", "bob"),
        cooldown_key("gw", "buzzstream", "k"),
    ]
    assert len({key_slot(k.encode()) for k in keys}) == 1


# --- the algorithm -------------------------------------------------------------


def test_burst_then_refused_with_exact_retry() -> None:
    s = Store()
    for _ in range(5):
        assert s.call(T0, P()).allowed
    out = s.call(T0, P())
    assert not out.allowed and out.decider == "per_user" and out.retry_us == 200 * MS


def test_refill_one_slot_per_interval() -> None:
    s = Store()
    for _ in range(5):
        s.call(T0, P())
    assert not s.call(T0 + 199_999, P()).allowed
    assert s.call(T0 + 200_000, P()).allowed
    assert not s.call(T0 + 200_000, P()).allowed
    for i in range(5):  # fully refilled a second after the burst
        assert s.call(T0 + 1_200_000, P()).allowed, i


def test_refused_call_writes_nothing() -> None:
    s = Store()
    s.call(T0, P(burst=1))
    before = dict(s.values)
    out = s.call(T0 + 1, P(burst=1))
    assert not out.allowed and s.values == before
    assert not any(p.committed for p in out.policies)


def test_delay_mode_reserves_evenly_spaced_slots() -> None:
    s = Store()
    policy = P(burst=1, on_exceed="delay")
    waits = [s.call(T0, policy).wait_us for _ in range(6)]
    assert waits == [0, 200 * MS, 400 * MS, 600 * MS, 800 * MS, 1000 * MS]


def test_delay_beyond_max_delay_is_refused_and_consumes_nothing() -> None:
    s = Store()
    policy = P(burst=1, on_exceed="delay", max_delay=0.5)
    for _ in range(3):
        assert s.call(T0, policy).allowed  # waits 0, 0.2, 0.4
    before = dict(s.values)
    out = s.call(T0, policy)  # would wait 0.6
    assert not out.allowed and out.retry_us == 100 * MS and s.values == before


def test_multi_policy_one_refusal_charges_none() -> None:
    s = Store()
    wide, narrow = P(name="wide", limit=100, burst=100), P(name="narrow", limit=1, burst=1)
    assert s.call(T0, wide, narrow).allowed
    before = dict(s.values)
    out = s.call(T0, wide, narrow)
    assert not out.allowed and out.decider == "narrow"
    assert s.values == before
    assert [p.verdict for p in out.policies] == ["allowed", "rejected"]


def test_multi_policy_every_key_is_charged_at_the_common_send_time() -> None:
    s = Store()
    slow = P(name="slow", limit=1, burst=1, on_exceed="delay")
    fast = P(name="fast", limit=100, burst=1, on_exceed="delay")
    s.call(T0, slow, fast)
    out = s.call(T0, slow, fast)
    assert out.wait_us == US
    assert s.values["k:fast"] == T0 + US + 10 * MS  # charged for when it is really sent


def test_shadow_never_refuses_and_is_charged_only_when_it_would_allow() -> None:
    s = Store()
    shadow = P(name="trial", limit=1, burst=1, shadow=True)
    first = s.call(T0, shadow)
    second = s.call(T0, shadow)
    assert first.allowed and second.allowed
    assert [p.verdict for p in second.policies] == ["rejected"]
    assert s.values["k:trial"] == T0 + US  # only the first call charged it
    assert ratelimit_headers(second) == ()  # not advertised


def test_shadow_is_not_charged_when_the_call_is_refused() -> None:
    s = Store()
    enforced, shadow = P(name="e", limit=1, burst=1), P(name="s", limit=10, shadow=True)
    s.call(T0, enforced, shadow)
    before = dict(s.values)
    assert not s.call(T0, enforced, shadow).allowed
    assert s.values == before


def test_cooldown_holds_delay_policies_and_refuses_reject_or_unlimited_calls() -> None:
    s = Store()
    s.cooldown = T0 + 3 * US
    held = s.call(T0, P(on_exceed="delay"))
    assert held.allowed and held.wait_us == 3 * US
    refused = s.call(T0, P(name="other", on_exceed="reject"))
    assert not refused.allowed and refused.decider == COOLDOWN and refused.retry_us == 3 * US
    bare = s.call(T0)
    assert not bare.allowed and bare.decider == COOLDOWN
    too_long = s.call(T0, P(name="short", on_exceed="delay", max_delay=1.0))
    assert not too_long.allowed and too_long.retry_us == 2 * US
    assert s.call(T0 + 3 * US).allowed


def test_a_cooldown_longer_than_max_delay_is_named_as_the_cause() -> None:
    s = Store()
    s.cooldown = T0 + 3 * US
    out = s.call(T0, P(name="short", on_exceed="delay", max_delay=1.0))
    assert not out.allowed and out.decider == COOLDOWN and out.retry_us == 2 * US
    (p,) = out.policies
    assert p.verdict != REJECTED and not p.committed
    state = dict(ratelimit_headers(out))["RateLimit"]
    assert state == '"short";r=5;t=0'  # the policy's quota is untouched, not r=0
    # a policy whose own queue is too long as well is still marked refused
    s.values["k:tight"] = T0 + 10 * US
    both = s.call(T0, P(name="tight", limit=1, burst=1, on_exceed="delay", max_delay=1.0))
    assert both.decider == COOLDOWN and both.policies[0].verdict == REJECTED
    # a cool-down that fits in max_delay leaves the refusal to the policy's queue
    s.cooldown = T0 + US // 2
    queued = s.call(T0, P(name="tight", limit=1, burst=1, on_exceed="delay", max_delay=1.0))
    assert queued.decider == "tight"


def test_extend_cooldown_keeps_the_later_end() -> None:
    assert extend_cooldown(T0, 0, 2.5) == T0 + 2_500_000
    assert extend_cooldown(T0, T0 + 9 * US, 2.0) == T0 + 9 * US


def test_release_gives_back_only_the_last_reservation() -> None:
    s = Store()
    policy = P(burst=1, on_exceed="delay")
    first, second = s.call(T0, policy), s.call(T0, policy)
    (h1,), (h2,) = holds(first), holds(second)
    assert release_value(T0, s.values["k:per_user"], h1) is None  # not the tail
    assert release_value(T0, s.values["k:per_user"], h2) == T0 + 200 * MS
    assert release_value(T0 + US, h1.expected_us, h1) == 0  # previous is past: delete


def test_script_reply_round_trip() -> None:
    limits = [compile_limit(P()), compile_limit(P(name="s", shadow=True, on_exceed="delay"))]
    assert script_args(tuple(limits)) == "2 200000 5 1 10000000 0 200000 5 0 10000000 1"
    reply = [0, 150_000, 1, T0, 2, 0, T0 + US, T0 + US, 1, 1, 0, T0 + 200_000]
    out = parse_reply(" ".join(map(str, reply)).encode(), limits, ["a", "b"])
    assert (out.allowed, out.retry_us, out.decider, out.now_us) == (False, 150_000, "per_user", T0)
    assert [(p.verdict, p.committed) for p in out.policies] == [
        ("rejected", False),
        ("delayed", True),
    ]
    assert holds(out) == (Hold("b", T0 + 200_000, 0),)


# --- headers -------------------------------------------------------------------


def test_headers_after_the_first_call_of_a_burst() -> None:
    out = Store().call(T0, P())
    assert ratelimit_headers(out) == (
        ("RateLimit-Policy", '"per_user";q=5;w=1'),
        ("RateLimit", '"per_user";r=4;t=1'),
    )


def test_headers_list_every_enforced_policy_and_zero_on_refusal() -> None:
    s = Store()
    a, b = P(name="a", limit=10, period=60, burst=10), P(name="b", limit=1, burst=1)
    s.call(T0, a, b)
    out = s.call(T0, a, b)
    assert ratelimit_headers(out) == (
        ("RateLimit-Policy", '"a";q=10;w=60, "b";q=1;w=1'),
        ("RateLimit", '"a";r=9;t=6, "b";r=0;t=1'),
    )


def test_policy_names_are_sf_strings() -> None:
    out = Store().call(T0, P(name='we"ird\\'))
    assert ratelimit_headers(out)[0] == ("RateLimit-Policy", '"we\\"ird\\\\";q=5;w=1')


def test_seconds_round_up_to_the_millisecond() -> None:
    assert seconds(1) == 0.001 and seconds(200_000) == 0.2 and seconds(0) == 0


# --- properties ----------------------------------------------------------------


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    limit=st.integers(1, 10),
    burst=st.integers(1, 10),
    gaps=st.lists(st.integers(0, 400_000), min_size=1, max_size=60),
)
def test_sends_never_exceed_burst_plus_rate_in_any_window(
    limit: int, burst: int, gaps: list[int]
) -> None:
    """In any period-long window at most ``limit + burst - 1`` calls are sent;
    with burst 1, at most ``limit`` (what a sliding-window upstream allows)."""
    s = Store()
    policy = P(limit=limit, burst=burst, on_exceed="delay", max_delay=1000.0)
    now, sends = T0, []
    for gap in gaps:
        now += gap
        out = s.call(now, policy)
        assert out.allowed
        sends.append(now + out.wait_us)
    sends.sort()
    for i, start in enumerate(sends):
        inside = sum(1 for t in sends[i:] if t < start + US)
        assert inside <= limit + burst - 1


@pytest.mark.parametrize("reject", [True, False])
def test_refusals_leave_no_trace_for_the_next_call(reject: bool) -> None:
    s = Store()
    policy = P(limit=2, burst=1, on_exceed="reject" if reject else "delay", max_delay=0.6)
    allowed = [s.call(T0, policy).allowed for _ in range(6)]
    went = 1 if reject else 2  # delay: waits 0 and 0.5 s; 1 s would exceed max_delay
    assert allowed == [True] * went + [False] * (6 - went)
    after = s.call(T0 + went * 500_000, policy)  # exactly when the last slot is due
    assert after.allowed and after.wait_us == 0
