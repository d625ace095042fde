"""bench/masking.py still runs (tiny sizes) and its figures say what they should."""

from __future__ import annotations

import pytest

from tests.harness import run_bench

pytestmark = pytest.mark.e2e


def test_bench_masking_runs_and_keeps_the_configured_secret_masked() -> None:
    out = run_bench("masking.py")
    assert "configured secret still masked: yes" in out
    assert "stand-in rotations: 200;" in out  # every call rotated the Beeswax cookie
    assert "  RSS: start" in out and "gateway RSS: start" in out
