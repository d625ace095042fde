"""bench/tracing.py still runs (tiny sizes): it is not part of the suite's timing."""

from __future__ import annotations

import re

import pytest

from tests.harness import run_bench

pytestmark = pytest.mark.e2e


def test_bench_tracing_runs_and_prints_both_cases() -> None:
    out = run_bench("tracing.py")
    assert len(re.findall(r"[\d,]+ req/s +ratio \d\.\d\d", out)) == 2
    assert len(re.findall(r"\d+ µs CPU/call +ratio \d\.\d\d", out)) == 2
    spans = int(re.findall(r"spans received by the OTLP receiver: (\d+)", out)[0])
    assert spans > 0  # the "on" case really exported
