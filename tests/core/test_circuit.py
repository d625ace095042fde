"""The upstream circuit breaker's state machine, driven by hand with an explicit clock."""

from __future__ import annotations

import pytest

from gateway.core.circuit import CLOSED, HALF_OPEN, OPEN, Circuit, CircuitPolicy

POLICY = CircuitPolicy(failures=3, failure_ratio=0.5, window=10.0, min_calls=6, open_for=5.0,
                       half_open_probes=2)  # fmt: skip


def fail(c: Circuit, now: float, n: int = 1) -> None:
    for _ in range(n):
        assert c.admit(now).allowed
        c.record(now, ok=False)


def succeed(c: Circuit, now: float, n: int = 1) -> None:
    for _ in range(n):
        assert c.admit(now).allowed
        c.record(now, ok=True)


def test_a_run_of_failures_opens_it_and_a_success_breaks_the_run() -> None:
    c = Circuit(POLICY)
    fail(c, 0.0, 2)
    succeed(c, 0.1)
    fail(c, 0.2, 2)
    assert c.state == CLOSED
    fail(c, 0.3)
    assert c.state == OPEN
    assert c.transitions == [(CLOSED, OPEN)]


def test_open_refuses_with_the_time_left() -> None:
    c = Circuit(POLICY)
    fail(c, 10.0, 3)
    refused = c.admit(12.0)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(3.0)
    assert c.remaining(12.0) == pytest.approx(3.0)


def test_the_failure_ratio_over_the_window_opens_it() -> None:
    c = Circuit(POLICY)
    for i in range(3):  # alternate: never 3 in a row, but half of 6 calls failed
        succeed(c, float(i))
        fail(c, float(i) + 0.5)
    assert c.state == OPEN


def test_the_ratio_needs_min_calls_and_forgets_old_calls() -> None:
    c = Circuit(POLICY)
    fail(c, 0.0, 2)
    succeed(c, 0.0)
    fail(c, 0.0, 2)  # 4 failures of 5 calls: under min_calls
    assert c.state == CLOSED
    succeed(c, 20.0, 5)  # the window moved on: the old failures are gone
    fail(c, 20.0)
    assert c.state == CLOSED  # 1 of 6


def test_half_open_lets_a_bounded_number_of_probes_through() -> None:
    c = Circuit(POLICY)
    fail(c, 0.0, 3)
    first, second, third = c.admit(5.0), c.admit(5.0), c.admit(5.0)
    assert c.state == HALF_OPEN
    assert first.allowed and first.probe and second.allowed and second.probe
    assert not third.allowed and third.retry_after > 0
    c.record(5.1, ok=True, probe=True)
    assert c.state == HALF_OPEN  # two successes are needed
    c.record(5.2, ok=True, probe=True)
    assert c.state == CLOSED
    assert c.transitions == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    fail(c, 6.0, 2)
    assert c.state == CLOSED  # the run starts again from zero


def test_a_failed_probe_opens_it_again_for_another_period() -> None:
    c = Circuit(POLICY)
    fail(c, 0.0, 3)
    probe = c.admit(5.0)
    c.record(5.5, ok=False, probe=probe.probe)
    assert c.state == OPEN
    assert c.admit(10.0).retry_after == pytest.approx(0.5)
    assert c.admit(10.5).probe


def test_a_released_probe_frees_its_slot_without_a_verdict() -> None:
    c = Circuit(POLICY)
    fail(c, 0.0, 3)
    a, b = c.admit(5.0), c.admit(5.0)
    assert not c.admit(5.0).allowed
    c.release(probe=a.probe)
    assert c.admit(5.0).allowed
    assert c.state == HALF_OPEN and b.probe


def test_late_outcomes_of_calls_admitted_while_closed_do_not_count() -> None:
    c = Circuit(POLICY)
    assert c.admit(0.0).allowed  # in flight when the circuit opens
    fail(c, 0.1, 3)
    c.record(0.2, ok=False)
    c.record(0.2, ok=True)
    assert c.state == OPEN and c.remaining(0.2) == pytest.approx(4.9)
