"""Runtime objects built at start-up (in cleanup contexts) and shared by handlers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.config import GatewayConfig
from gateway.server.budget import ByteBudget
from gateway.server.client import UpstreamClient
from gateway.server.limiter import Limiter, NoLimiter
from gateway.upstreams.base import KeyValueStore, SessionFleet, UpstreamAuth

if TYPE_CHECKING:  # OpenTelemetry is imported only when tracing is on
    from gateway.server.retry import UpstreamRetry
    from gateway.server.tracing import Tracing
    from gateway.server.upstream_circuit import UpstreamBreaker


@dataclass
class GatewayState:
    clients: dict[str, UpstreamClient] = field(default_factory=dict)
    auths: dict[str, UpstreamAuth] = field(default_factory=dict)
    breakers: dict[str, UpstreamBreaker] = field(default_factory=dict)  # circuit: configured
    retries: dict[str, UpstreamRetry] = field(default_factory=dict)  # retry: configured
    limiter: Limiter = field(default_factory=NoLimiter)
    store: KeyValueStore | None = None
    token_store: KeyValueStore | None = None  # per-user upstream tokens, encrypted at rest
    redis: Any = None  # redis.asyncio.Redis when REDIS_URL is set
    fleet: SessionFleet | None = None  # upstream sessions shared through Redis
    shutting_down: bool = False
    tracing: Tracing | None = None  # None: tracing off (no OTEL_* endpoint)
    budget: ByteBudget = field(default_factory=lambda: ByteBudget(64 * 1024 * 1024))
    extras: dict[str, Any] = field(default_factory=dict)
    # Hot reload (server/reload.py): the config in force once a reload swapped it in
    # (None: the start-up one, app[CONFIG]), and the pools it replaced, closed at shutdown.
    config: GatewayConfig | None = None
    retired_sessions: list[Any] = field(default_factory=list)
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
