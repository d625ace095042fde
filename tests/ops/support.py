"""Small helpers shared by the operations tests: HTTP calls, configs, tools."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.harness import CONFIG, ROOT

DEPLOY = ROOT / "deploy"
VENV_BIN = ROOT / ".venv" / "bin"


def call(
    url: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange; any status is returned, never raised."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target or "/", body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def call_json(url: str, method: str = "GET", payload: Any = None) -> tuple[int, Any]:
    body = None if payload is None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    status, _, raw = call(url, method, body, headers)
    return status, json.loads(raw) if raw else None


def config_with(tmp: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """The shipped config with ``change`` applied, written to ``tmp``."""
    data = yaml.safe_load(CONFIG.read_text())
    change(data)
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def tool(name: str) -> str:
    """A command-line tool from the venv or the PATH, or skip the test saying why."""
    found = VENV_BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        hint = "run `make prometheus` (Debian package `prometheus`)" if "prom" in name else ""
        pytest.skip(f"{name} is not installed {hint}".strip())
    return path


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, **kwargs)


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]
