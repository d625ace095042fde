"""The retry policy, back-off and budget, with an explicit clock and random source."""

from __future__ import annotations

import pytest

from gateway.core.retry import RetryBudget, RetryPolicy, backoff, decide

POLICY = RetryPolicy()


def top() -> float:
    return 0.999999


def bottom() -> float:
    return 0.0


def test_full_jitter_back_off_stays_under_an_exponential_ceiling() -> None:
    assert [round(backoff(POLICY, n, top), 3) for n in range(1, 7)] == [
        0.1,
        0.2,
        0.4,
        0.8,
        1.6,
        2.0,
    ]
    assert backoff(POLICY, 3, bottom) == 0.0
    assert backoff(POLICY, 2, lambda: 0.5) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("method", "status", "retry_after", "reason"),
    [
        ("GET", 502, None, "502"),
        ("HEAD", 503, None, "503"),
        ("GET", 504, None, "504"),
        ("GET", 429, 0.5, "429"),
    ],
)
def test_retryable_replies(
    method: str, status: int, retry_after: float | None, reason: str
) -> None:
    d = decide(POLICY, method=method, attempt=1, elapsed=0.0, rng=top, status=status,
               retry_after=retry_after)  # fmt: skip
    assert d.retry and d.reason == reason


@pytest.mark.parametrize(
    ("method", "status", "retry_after", "replayable"),
    [
        ("POST", 503, None, True),  # not an idempotent method
        ("PUT", 502, None, True),  # only when configured
        ("GET", 500, None, True),
        ("GET", 404, None, True),
        ("GET", 429, None, True),  # 429 without Retry-After: when would we come back?
        ("GET", 503, None, False),  # the streamed body is gone
        ("GET", 200, None, True),
    ],
)
def test_not_retried(method: str, status: int, retry_after: float | None, replayable: bool) -> None:
    d = decide(POLICY, method=method, attempt=1, elapsed=0.0, rng=top, status=status,
               retry_after=retry_after, replayable=replayable)  # fmt: skip
    assert not d.retry


def test_a_connection_that_never_opened_is_resent_whatever_the_method() -> None:
    d = decide(POLICY, method="POST", attempt=1, elapsed=0.0, rng=top, unsent=True,
               replayable=False)  # fmt: skip
    assert d.retry and d.reason == "connect_failed"


def test_configured_methods() -> None:
    policy = RetryPolicy(methods=frozenset({"GET", "PUT"}))
    assert decide(policy, method="PUT", attempt=1, elapsed=0, rng=top, status=503).retry


def test_attempts_and_deadline_bound_it() -> None:
    assert decide(POLICY, method="GET", attempt=2, elapsed=0, rng=top, status=503).retry
    last = decide(POLICY, method="GET", attempt=3, elapsed=0, rng=top, status=503)
    assert not last.retry and last.refused == "attempts"
    late = decide(POLICY, method="GET", attempt=1, elapsed=9.95, rng=top, status=503)
    assert not late.retry and late.refused == "deadline"


def test_retry_after_is_honoured_never_earlier_and_refused_past_the_deadline() -> None:
    d = decide(POLICY, method="GET", attempt=1, elapsed=0, rng=top, status=429, retry_after=3.0)
    assert d.retry and d.delay == 3.0
    d = decide(POLICY, method="GET", attempt=1, elapsed=0, rng=top, status=503, retry_after=0.01)
    assert d.delay == pytest.approx(0.1, abs=1e-4)  # the back-off is longer: it wins
    far = decide(POLICY, method="GET", attempt=1, elapsed=1, rng=top, status=429, retry_after=60)
    assert not far.retry and far.refused == "deadline"


def test_the_budget_is_a_share_of_the_calls_over_a_sliding_window() -> None:
    budget = RetryBudget(RetryPolicy(budget_ratio=0.2, budget_window=10.0, budget_min=3))
    for _ in range(50):
        budget.on_call(0.0)
    assert sum(budget.spend(1.0) for _ in range(100)) == 10  # 20 % of 50
    assert not budget.spend(5.0)
    budget.on_call(10.5)  # the 50 calls and the 10 resends left the window
    assert sum(budget.spend(11.0) for _ in range(10)) == 3  # the floor


def test_the_floor_lets_a_quiet_upstream_retry() -> None:
    budget = RetryBudget(RetryPolicy(budget_min=3))
    budget.on_call(0.0)
    assert [budget.spend(0.0) for _ in range(4)] == [True, True, True, False]
