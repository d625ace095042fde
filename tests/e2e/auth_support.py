"""Helpers for the upstream-auth end-to-end tests: raw HTTP, config files, metrics."""

from __future__ import annotations

import http.client
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.harness import CONFIG, Gateway


def call(
    gw: Gateway | str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Send ``path`` exactly as given and return (status, lower-cased headers, body)."""
    url = gw if isinstance(gw, str) else gw.url
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def write_config(tmp: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """The shipped config with ``change`` applied to its parsed YAML, as a new file."""
    data = yaml.safe_load(CONFIG.read_text())
    change(data)
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text output (0 when absent)."""
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match["name"] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match["value"])
    return 0.0


def renewals(gw: Gateway | str, upstream: str, result: str = "ok") -> float:
    _, _, body = call(gw, "GET", "/metrics")
    return metric(body.decode(), "gateway_auth_renewals_total", upstream=upstream, result=result)
