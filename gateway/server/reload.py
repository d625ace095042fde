"""Hot reload: ``SIGHUP`` re-reads and validates the config and swaps it in.

:func:`reload_config` runs the same loader as ``gateway run`` and
``gateway check-config``. An invalid file is refused: its problems are logged
(``config_reload_refused``, the same messages ``check-config`` prints), counted
in ``gateway_config_reloads_total{result="refused"}``, and the config in force
keeps serving. A valid one replaces, at once and for the next call:

- routes (``base_url``), limits, timeouts, pool settings, credentials,
  circuit and retry settings of every upstream, upstreams added or removed;
- ``callers.tokens`` and ``public_url``.

Only what changed is rebuilt: an upstream whose section is unchanged keeps its
auth (login sessions, tokens), its breaker and its connection pool. An upstream
whose pool size or connect timeout changed gets a new pool. Calls in flight
keep the objects they started with (handlers hold references, the swap assigns
new dicts), so none is dropped; replaced pools are closed at shutdown (their
idle connections expire on their own after 30 s).

Keys bound at start-up (:data:`RESTART_ONLY`: listeners, Redis, the token
store key, logging, body limit, shutdown grace, problem base URL; and
:data:`RESTART_ONLY_SERVER`: ``server.max_connections``, ``server.head_timeout``,
``server.max_buffered_bytes``, ``server.workers``) keep their old values; a change
to them is logged as ``config_reload_needs_restart``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from gateway.config import GatewayConfig, UpstreamConfig, load_config
from gateway.errors import ConfigError
from gateway.logs import get_logger
from gateway.metrics import prime_metrics
from gateway.server.app import secret_values
from gateway.server.auth_io import build_auth
from gateway.server.client import UpstreamClient, make_session
from gateway.server.keys import MASKER, METRICS, STATE, config_of
from gateway.server.retry import UpstreamRetry
from gateway.server.state import Upstream
from gateway.server.upstream_circuit import UpstreamBreaker
from gateway.upstreams import REGISTRY

RESTART_ONLY = (
    "listen_host", "listen_port", "ops_listen", "onboarding_listen", "max_body_bytes",
    "shutdown_grace", "log_level", "log_format", "redis", "token_store_key", "problem_base_url",
)  # fmt: skip
# server.* keys bound at start-up: the listeners' connection cap and keep-alive
# timer, the byte budget's size. (max_inflight and body_timeout are read per call.)
RESTART_ONLY_SERVER = (
    "max_connections", "head_timeout", "max_buffered_bytes", "workers", "workers_auto",
)  # fmt: skip
log = get_logger("gateway.reload")


def _pool_settings(cfg: UpstreamConfig) -> tuple[object, ...]:
    """What make_session bakes into a pool; everything else is read per call."""
    return (cfg.pool_size, cfg.connect_timeout)


async def reload_config(
    app: web.Application, path: str | Path | None, env: Mapping[str, str]
) -> bool:
    """Re-read the config; True when the new one is in force."""
    metrics = app[METRICS]
    async with app[STATE].reload_lock:  # one reload at a time
        loop = asyncio.get_running_loop()
        try:
            new = await loop.run_in_executor(None, load_config, path, env)
        except ConfigError as exc:
            log.error("config_reload_refused", problems=list(exc.problems or (str(exc),)))
            metrics.config_reloads.labels("refused").inc()
            return False
        old = config_of(app)
        pinned = [key for key in RESTART_ONLY if getattr(new, key) != getattr(old, key)]
        pinned += [
            f"server.{key}"
            for key in RESTART_ONLY_SERVER
            if getattr(new.server, key) != getattr(old.server, key)
        ]
        server = replace(new.server, **{k: getattr(old.server, k) for k in RESTART_ONLY_SERVER})
        new = replace(new, server=server, **{key: getattr(old, key) for key in RESTART_ONLY})
        changed = _swap(app, old, new)
        metrics.config_reloads.labels("ok").inc()
        log.info("config_reloaded", upstreams_changed=changed)
        if pinned:
            log.warning("config_reload_needs_restart", keys=pinned)
        return True


def _swap(app: web.Application, old: GatewayConfig, new: GatewayConfig) -> list[str]:
    state, metrics = app[STATE], app[METRICS]
    app[MASKER].remember_configured(secret_values(new))
    prime_metrics(metrics, {n: [p.name for p in u.rate_limits] for n, u in new.upstreams.items()})
    upstreams, breakers = dict(state.upstreams), dict(state.breakers)
    retries = dict(state.retries)
    changed = sorted(set(old.upstreams) ^ set(new.upstreams))
    for name in set(old.upstreams) - set(new.upstreams):
        state.retired_sessions.append(upstreams.pop(name).client.session)
        breakers.pop(name, None)
        retries.pop(name, None)
    for name, cfg in new.upstreams.items():
        before = old.upstreams.get(name)
        if before == cfg:
            continue
        if before is not None:
            changed.append(name)
        upstreams[name] = _rebuilt(app, name, cfg, before, upstreams.get(name))
        if before is None or before.circuit != cfg.circuit:
            breakers.pop(name, None)
            if cfg.circuit is not None:
                breakers[name] = UpstreamBreaker(name, cfg.circuit, metrics)
        if before is None or before.retry != cfg.retry:
            retries.pop(name, None)
            if cfg.retry is not None:
                retries[name] = UpstreamRetry(name, cfg.retry, metrics)
    # One assignment each: a call reads its upstream's objects once, at its start.
    state.upstreams, state.breakers = upstreams, breakers
    state.retries = retries
    state.config = new
    return sorted(set(changed))


def _rebuilt(
    app: web.Application,
    name: str,
    cfg: UpstreamConfig,
    before: UpstreamConfig | None,
    current: Upstream | None,
) -> Upstream:
    """The upstream under its new config: the pool kept unless its settings changed,
    the auth (and its login session) kept unless the auth section changed."""
    state, metrics = app[STATE], app[METRICS]
    if current is None or before is None or _pool_settings(before) != _pool_settings(cfg):
        traced = () if state.tracing is None else (state.tracing.trace_config(name),)
        if current is not None:
            state.retired_sessions.append(current.client.session)
        client = UpstreamClient(cfg, make_session(cfg, traced), metrics)
    else:
        client = UpstreamClient(cfg, current.client.session, metrics, current.client.gate)
    spec = REGISTRY[name]
    keep = current is not None and before is not None and before.auth == cfg.auth
    auth = current.auth if keep and current is not None else build_auth(app, cfg, spec, client)
    return Upstream(name, cfg, spec, auth, client)


def reload_on_sighup(app: web.Application, path: str | Path | None, env: Mapping[str, str]) -> None:
    """``SIGHUP`` reloads the config (one at a time, none once shutdown began)."""
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        if app[STATE].shutting_down:
            return
        log.info("config_reload_requested", path=str(path) if path else None)
        task = loop.create_task(reload_config(app, path, env))
        running.add(task)
        task.add_done_callback(running.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
