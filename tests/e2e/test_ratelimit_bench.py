"""The benchmark still runs (tiny sizes): it is not part of the suite's timing."""

from __future__ import annotations

import re

import pytest

from tests.harness import run_bench

pytestmark = pytest.mark.e2e


def test_bench_limiter_runs_and_prints_every_figure() -> None:
    out = run_bench("limiter.py")
    assert len(re.findall(r"[\d,]+ decisions/s", out)) == 2  # batched and unbatched
    assert len(re.findall(r"[\d,]+ req/s +ratio \d\.\d\d", out)) == 3  # off, on, on unbatched
    assert "fallbacks 0" in out
