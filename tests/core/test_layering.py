"""The pure layers stay pure: core/ and upstreams/ never import I/O libraries (STYLE.md)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import gateway.core
import gateway.upstreams

FORBIDDEN = ("aiohttp", "redis", "prometheus_client", "structlog")


def _modules() -> list[str]:
    names = []
    for package in (gateway.core, gateway.upstreams):
        for info in pkgutil.iter_modules(package.__path__):
            names.append(f"{package.__name__}.{info.name}")
    return names


def test_pure_layers_import_no_io_library() -> None:
    modules = _modules()
    assert len(modules) >= 10
    code = (
        "import sys\n"
        f"for name in {modules!r}:\n"
        "    __import__(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "", f"pure layers pulled in: {result.stdout.strip()}"
