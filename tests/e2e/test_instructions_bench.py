"""``bench/instructions.py`` still runs end to end: B and the gateway counted, sane figures.

Tiny sizes (``--quick``: 20 calls); the figures are checked for sanity only.
"""

from __future__ import annotations

import re
import shutil

import pytest

from tests.harness import run_bench

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed"),
]


def test_instructions_per_call_are_counted_for_the_bare_proxy_and_the_gateway() -> None:
    out = run_bench("instructions.py")
    rows = {
        m.group(1): int(m.group(2).replace(",", ""))
        for m in re.finditer(r"^\| (B|C) [^|]*\| ([\d,]+) \|", out, re.M)
    }
    assert set(rows) == {"B", "C"}, out
    # a proxied call runs hundreds of thousands of instructions, the gateway's more than B's
    assert 50_000 < rows["B"] < rows["C"] < 20_000_000, out
