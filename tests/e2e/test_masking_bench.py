"""bench/masking.py still runs (tiny sizes) and its figures say what they should."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.harness import ROOT

pytestmark = pytest.mark.e2e


def test_bench_masking_runs_and_keeps_the_configured_secret_masked() -> None:
    result = subprocess.run(
        [sys.executable, "bench/masking.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "configured secret still masked: yes" in out
    assert "stand-in rotations: 200;" in out  # every call rotated the Beeswax cookie
    assert "  RSS: start" in out and "gateway RSS: start" in out
