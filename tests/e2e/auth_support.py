"""Helpers for the upstream-auth end-to-end tests: raw HTTP, config files, metrics."""

from __future__ import annotations

import re

from tests.harness import Gateway, call, write_config

__all__ = ["call", "metric", "renewals", "write_config"]


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
