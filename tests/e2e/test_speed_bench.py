"""``make bench`` (bench/speed.py) still runs end to end: one row per setup, sane figures.

Tiny sizes (``--quick``: one round of one-second runs); the figures themselves
are only checked for sanity, not against the issue's targets.
"""

from __future__ import annotations

import re
import shutil

import pytest

from bench.upstream import nginx_binary
from tests.harness import run_bench

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        nginx_binary() is None or shutil.which("wrk") is None,
        reason="nginx or wrk is not installed (make bench installs them with apt-get)",
    ),
]

SETUPS = ("A", "B", "C", "D", "E1", "E2", "C2")


def number(text: str) -> float:
    return float(re.sub(r"[^\d.].*", "", text.strip().replace(",", "")))


def table(out: str) -> dict[str, list[str]]:
    """Setup key -> the cells of its row in the printed markdown table."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0].split(" ")[0] in SETUPS:
            rows[cells[0].split(" ")[0]] = cells
    return rows


def test_bench_speed_prints_a_row_per_setup_with_sane_figures() -> None:
    out = run_bench("speed.py")
    rows = table(out)
    assert {"A", "B", "C", "D", "E1", "E2"} <= set(rows), out
    for key, cells in rows.items():
        rps, p50_p99, cpu_us, c1_p50 = cells[1], cells[3], cells[4], cells[5]
        p50, p99 = (float(x) for x in p50_p99.split(" / "))
        assert number(rps) > 20, (key, out)
        assert 0 < p50 <= p99, (key, out)
        assert number(c1_p50) > 0, (key, out)
        if key != "A":  # nginx's worker can round to 0 µs per request
            assert number(cpu_us) > 0, (key, out)
    assert number(rows["A"][1]) > number(rows["B"][1])  # nginx direct outruns any proxy
    for key in ("C", "D", "E1", "E2"):
        found = re.fullmatch(
            r"([\d.]+) (?:pass|\*\*FAIL\*\*) \(≤80\), ([\d,]+) served", rows[key][-1]
        )
        assert found is not None, (key, rows[key])
        assert 20 < number(found[1]) < 1000 and number(found[2]) > 0, (key, rows[key])
    redis = re.search(r"EVALSHA ([\d.]+).*?, ([\d.]+) round trips", out)
    assert redis is not None, out
    assert 0.9 <= float(redis[1]) <= 1.2 and 0 < float(redis[2]) <= 1.1, out
    assert "upstream: nginx" in out and "wrk 4" in out and "open loop" in out
