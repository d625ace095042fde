"""The cgroup CPU quota, parsed: what ``server.workers: auto`` starts."""

from __future__ import annotations

import pytest

from gateway.core.cpu_quota import parse_cfs, parse_cpu_max, workers_for


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("max 100000\n", None),
        ("200000 100000\n", 2.0),
        ("150000 100000", 1.5),
        ("50000 100000", 0.5),
        ("400000", 4.0),  # the period defaults to 100 ms
        ("", None),
        ("garbage here", None),
        ("0 100000", None),
    ],
)
def test_cpu_max(text: str, cpus: float | None) -> None:
    assert parse_cpu_max(text) == cpus


@pytest.mark.parametrize(
    ("quota", "period", "cpus"),
    [("-1\n", "100000\n", None), ("300000\n", "100000\n", 3.0), ("x", "100000", None)],
)
def test_cgroup_v1_cfs(quota: str, period: str, cpus: float | None) -> None:
    assert parse_cfs(quota, period) == cpus


@pytest.mark.parametrize(
    ("quota", "affinity", "workers"),
    [
        (None, 8, 8),  # no quota: the CPUs this process may run on
        (2.0, 8, 2),
        (1.5, 8, 1),  # whole CPUs only: a second worker would be throttled
        (0.25, 8, 1),  # at least one
        (16.0, 4, 4),  # never more than the affinity mask allows
        (None, 0, 1),
        (3.0, 3, 3),
    ],
)
def test_workers_for(quota: float | None, affinity: int, workers: int) -> None:
    assert workers_for(quota, affinity) == workers
