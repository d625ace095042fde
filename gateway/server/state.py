"""Runtime objects built at start-up (in cleanup contexts) and shared by handlers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from gateway.config import GatewayConfig, UpstreamConfig
from gateway.server.budget import ByteBudget
from gateway.server.client import UpstreamClient
from gateway.server.limiter import Limiter, NoLimiter
from gateway.server.redis_client import RedisClient
from gateway.upstreams.base import KeyValueStore, SessionFleet, UpstreamAuth, UpstreamSpec

if TYPE_CHECKING:  # OpenTelemetry is imported only when tracing is on
    from gateway.server.retry import UpstreamRetry
    from gateway.server.tracing import Tracing
    from gateway.server.upstream_circuit import UpstreamBreaker


@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream at run time: its config, its module's spec, its auth and its
    client, built together (``server/app.py``, again by a reload) and read once
    by each call at its start."""

    name: str
    config: UpstreamConfig
    spec: UpstreamSpec
    auth: UpstreamAuth
    client: UpstreamClient


@dataclass
class GatewayState:
    upstreams: dict[str, Upstream] = field(default_factory=dict)
    breakers: dict[str, UpstreamBreaker] = field(default_factory=dict)  # circuit: configured
    retries: dict[str, UpstreamRetry] = field(default_factory=dict)  # retry: configured
    limiter: Limiter = field(default_factory=NoLimiter)
    store: KeyValueStore | None = None
    token_store: KeyValueStore | None = None  # per-user upstream tokens, encrypted at rest
    redis: RedisClient | None = None  # the limiter's client, when REDIS_URL is set
    fleet: SessionFleet | None = None  # upstream sessions shared through Redis
    shutting_down: bool = False
    tracing: Tracing | None = None  # None: tracing off (no OTEL_* endpoint)
    budget: ByteBudget = field(default_factory=lambda: ByteBudget(64 * 1024 * 1024))
    inflight: int = 0  # proxied calls in flight (server.max_inflight; drained at shutdown)
    limiter_status: Callable[[], str] | None = None  # /readyz's line, once the limiter runs
    # server.workers > 1: (whether any worker is ready, /readyz's line), from the supervisor.
    workers_status: Callable[[], tuple[bool, str]] | None = None
    # Hot reload (server/reload.py): the config in force once a reload swapped it in
    # (None: the start-up one, app[CONFIG]), and the pools it replaced, closed at shutdown.
    config: GatewayConfig | None = None
    retired_sessions: list[aiohttp.ClientSession] = field(default_factory=list)
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
