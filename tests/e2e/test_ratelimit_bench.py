"""The benchmark still runs (tiny sizes): it is not part of the suite's timing."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.harness import ROOT

pytestmark = pytest.mark.e2e


def test_bench_limiter_runs_and_prints_every_figure() -> None:
    result = subprocess.run(
        [sys.executable, "bench/limiter.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert len(re.findall(r"[\d,]+ decisions/s", out)) == 2  # batched and unbatched
    assert len(re.findall(r"[\d,]+ req/s +ratio \d\.\d\d", out)) == 3  # off, on, on unbatched
    assert "fallbacks 0" in out
