"""bench/tracing.py still runs (tiny sizes): it is not part of the suite's timing."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.harness import ROOT

pytestmark = pytest.mark.e2e


def test_bench_tracing_runs_and_prints_both_cases() -> None:
    result = subprocess.run(
        [sys.executable, "bench/tracing.py", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(re.findall(r"[\d,]+ req/s +ratio \d\.\d\d", result.stdout)) == 2
    assert len(re.findall(r"\d+ µs CPU/call +ratio \d\.\d\d", result.stdout)) == 2
    spans = int(re.findall(r"spans received by the OTLP receiver: (\d+)", result.stdout)[0])
    assert spans > 0  # the "on" case really exported
