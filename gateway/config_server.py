"""The ``server`` section: how much the gateway takes on from its callers at once.

Each bound protects the sidecar's memory and event loop (docs/operations.md,
"Capacity"); beyond it the caller gets a 503 ``upstream_unavailable`` problem
with ``Retry-After`` (or, for a connection over ``max_connections``, that
problem written on the new connection before it is closed), counted in
``gateway_load_shed_total{reason}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.config_reader import Section
from gateway.cpus import auto_workers
from gateway.errors import ConfigError

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    # Caller connections open at once (the proxy listener and the ops listener each).
    max_connections: int = 1000
    # A new or kept-alive caller connection must deliver a complete request head
    # within this (aiohttp's keep-alive timer, which is not reset by partial data).
    head_timeout: float = 10.0
    # Time to receive a request body, from the gateway's first read of it.
    body_timeout: float = 60.0
    # Proxied calls in the gateway at once, rate-limit waits included.
    max_inflight: int = 512
    # Request bytes held in memory at once (bodies that must be buffered to be signed).
    max_buffered_bytes: int = 64 * MIB
    # Worker processes serving the proxy port (SO_REUSEPORT) under one supervisor;
    # 1: one process, no supervisor. ``auto`` is resolved here (workers_auto says so).
    workers: int = 1
    workers_auto: bool = False


WORKERS_ENV = "GATEWAY_WORKERS"


def parse_workers(value: Any, key: str, cpus: Callable[[], int] = auto_workers) -> tuple[int, bool]:
    """``workers``: a whole number >= 1, or ``auto`` (the CPU quota of the
    container, else the CPUs this process may run on). Returns (count, auto)."""
    text = str(value).strip() if not isinstance(value, bool) else ""
    if text == "auto":
        return cpus(), True
    if text.isdigit() and int(text) >= 1 and not isinstance(value, float):
        return int(text), False
    raise ConfigError(f"{key}: expected a whole number of processes >= 1 or auto, got {value!r}")


def _workers(section: Section, env: Mapping[str, str]) -> tuple[int, bool]:
    in_file = section.raw("workers", 1)  # read even when the variable wins: a known key
    if env.get(WORKERS_ENV):
        return parse_workers(env[WORKERS_ENV], WORKERS_ENV)
    return parse_workers(in_file, section.key("workers"))


def parse_server(
    section: Section, max_body_bytes: int, env: Mapping[str, str] | None = None
) -> ServerConfig:
    workers, auto = section._soft(lambda: _workers(section, env or {}), (1, False))
    cfg = ServerConfig(
        workers=workers,
        workers_auto=auto,
        max_connections=section.integer("max_connections", 1000, minimum=1),
        head_timeout=section.duration("head_timeout", 10.0),
        body_timeout=section.duration("body_timeout", 60.0),
        max_inflight=section.integer("max_inflight", 512, minimum=1),
        max_buffered_bytes=section.integer("max_buffered_bytes", 64 * MIB, minimum=1),
    )
    section.done()
    if cfg.head_timeout <= 0 or cfg.body_timeout <= 0:
        raise ConfigError(f"{section.path}: timeouts must be positive")
    if cfg.max_buffered_bytes < max_body_bytes:
        raise ConfigError(
            f"{section.key('max_buffered_bytes')}: must be at least the largest "
            f"max_body_bytes ({max_body_bytes}), or such a body could never be sent"
        )
    return cfg
