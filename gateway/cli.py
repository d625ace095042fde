"""Command line (docs/contract.md, Running it): ``gateway run``, ``gateway check-config``,
``gateway healthcheck``, ``gateway --version``.

``run`` serves until SIGTERM or SIGINT, then drains (see :func:`serve`).
``healthcheck`` is what the container image's ``HEALTHCHECK`` runs: the slim
image has no curl, so the gateway checks its own ``/healthz`` with urllib.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web
from structlog.contextvars import bind_contextvars

from gateway import __version__, eventloop
from gateway.config import DEFAULT_LISTEN, GatewayConfig, load_config, parse_listen
from gateway.core.secrets import SecretMasker
from gateway.errors import ConfigError
from gateway.logs import configure_logging, get_logger, log_settings
from gateway.metrics import create_metrics
from gateway.server.app import create_app, secret_values
from gateway.server.health import add_health_routes
from gateway.server.keys import CONFIG, METRICS, STATE
from gateway.server.listener import BoundedSite, runner_options
from gateway.server.oauth_routes import onboarding_app
from gateway.server.pod_metrics import pod_registry
from gateway.server.reload import reload_on_sighup
from gateway.server.supervisor import supervise
from gateway.server.tracing_env import exporter_header_values, load_tracing, tracing_enabled
from gateway.server.workers import POD_DIR_ENV, WorkerRole, status_reader

log = get_logger("gateway")

# After the grace period, calls still running are cancelled; aiohttp waits this
# long for the cancelled handlers to unwind before closing their connections.
CANCEL_SECONDS = 1.0
DRAIN_POLL_SECONDS = 0.05


def ops_app(app: web.Application) -> web.Application:
    """``/healthz``, ``/readyz`` and ``/metrics`` alone, sharing ``app``'s state.

    Served on ``ops_listen`` (``GATEWAY_OPS_LISTEN``) so that a sidecar can keep
    its proxy port on loopback, reachable only by the app in its pod, while the
    kubelet probes and Prometheus reach this one on the pod address.
    """
    ops = web.Application()
    ops[CONFIG] = app[CONFIG]
    ops[METRICS] = app[METRICS]
    ops[STATE] = app[STATE]
    add_health_routes(ops)
    return ops


async def _start(
    app: web.Application, host: str, port: int, reuse_port: bool = False
) -> web.AppRunner:
    server = app[CONFIG].server
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=CANCEL_SECONDS,
        **runner_options(server),
    )
    await runner.setup()
    metrics = app[METRICS]
    shed = metrics.load_shed.labels("connections")

    def malformed(status: int, code: str) -> None:  # counted like any refusal, no upstream
        metrics.requests.labels("none", "OTHER", str(status), code).inc()

    try:
        await BoundedSite(
            runner,
            host,
            port,
            max_connections=server.max_connections,
            on_refused=shed.inc,
            on_malformed=malformed,
            problem_base=app[CONFIG].problem_base_url,
            reuse_port=reuse_port,
        ).start()
    except OSError:
        await runner.cleanup()  # close the client sessions and Redis made at setup
        raise
    return runner


def _inflight(app: web.Application) -> int:
    return app[STATE].inflight


async def drain(app: web.Application, grace: float, force: asyncio.Event) -> bool:
    """Wait until no proxied call is in flight, ``grace`` passes or ``force`` is set.

    Calls waiting on a rate-limit delay count as in flight (the proxy counts a
    call from routing to its last byte). Returns whether everything finished.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while _inflight(app) > 0 and loop.time() < deadline and not force.is_set():  # noqa: ASYNC110
        await asyncio.sleep(DRAIN_POLL_SECONDS)
    return _inflight(app) == 0


def _worker_app(
    config: GatewayConfig, role: WorkerRole | None, masker: SecretMasker
) -> web.Application:
    """The gateway app; a worker's ``/metrics`` answers for the pod, its ``/readyz``
    names the workers (server/workers.py). ``masker``: the one the log pipeline holds."""
    masker.remember_configured(exporter_header_values(os.environ))  # often an API key
    tracing = load_tracing(os.environ)
    if role is None:
        return create_app(config, tracing=tracing, masker=masker)
    bind_contextvars(worker=role.index)  # on every line this worker logs
    metrics = replace(create_metrics(), registry=pod_registry(role.pod_dir))
    app = create_app(config, metrics=metrics, tracing=tracing, masker=masker)
    app[STATE].workers_status = status_reader(role.pod_dir)
    return app


async def _listen(
    app: web.Application, config: GatewayConfig, role: WorkerRole | None
) -> list[web.AppRunner]:
    """The proxy, ops and onboarding listeners; workers share theirs (``SO_REUSEPORT``)
    and leave the ops listener to the supervisor."""
    shared = role is not None
    runners = [await _start(app, config.listen_host, config.listen_port, shared)]
    if config.ops_listen is not None and not shared:
        runners.append(await _start(ops_app(app), *config.ops_listen))
    if config.onboarding_listen is not None:
        runners.append(await _start(onboarding_app(app), *config.onboarding_listen, shared))
    return runners


async def serve(
    config: GatewayConfig,
    config_path: str | None = None,
    role: WorkerRole | None = None,
    masker: SecretMasker | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT, then drain and return (the process exits 0).

    On the first signal ``/readyz`` answers 503 at once, so the load balancer or
    kubelet stops sending traffic. The listener stays open: a late proxied call
    gets a 503 ``upstream_unavailable`` problem rather than a refused
    connection. Calls in flight, rate-limit waits included, get up to
    ``shutdown_grace`` seconds to finish; whatever still runs then is
    cancelled. A second signal ends the grace period early. ``SIGHUP`` reloads
    the config from ``config_path`` (server/reload.py). ``role``: this process
    is one of ``server.workers`` workers (server/supervisor.py). ``masker``: the
    app's known secrets, the one the log pipeline holds (``main``).
    """
    app = _worker_app(config, role, SecretMasker() if masker is None else masker)
    runners = await _listen(app, config, role)
    log.info(
        "started",
        listen=f"{config.listen_host}:{config.listen_port}",
        ops_listen=None if config.ops_listen is None else "{}:{}".format(*config.ops_listen),
        onboarding_listen=(
            None if config.onboarding_listen is None else "{}:{}".format(*config.onboarding_listen)
        ),
        upstreams=sorted(config.upstreams),
        redis="configured" if config.redis.url else "none (per-process limits)",
        event_loop=eventloop.loop_name(),
    )
    stop = asyncio.Event()
    force = asyncio.Event()

    def on_signal() -> None:
        (force if stop.is_set() else stop).set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    reload_on_sighup(app, config_path, os.environ)
    watcher = None
    if role is not None:
        role.announce_ready()
        watcher = asyncio.create_task(role.watch_parent(stop))
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    app[STATE].shutting_down = True
    log.info("draining", grace_seconds=config.shutdown_grace, inflight=_inflight(app))
    if not await drain(app, config.shutdown_grace, force):
        log.warning("drain_incomplete", cancelled=_inflight(app))
    for runner in runners:  # the proxy first: the ops port answers 503 until the end
        await runner.cleanup()
    log.info("stopped")


def health_url(env: Mapping[str, str]) -> str:
    """``/healthz`` on the ops listener if set, else on the main one, seen from inside."""
    var = "GATEWAY_OPS_LISTEN" if env.get("GATEWAY_OPS_LISTEN") else "GATEWAY_LISTEN"
    host, port = parse_listen(env.get(var) or DEFAULT_LISTEN, var)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/healthz"


def health_target(url: str) -> str:
    """``--url`` as given, or with ``/healthz`` added when it is a base URL
    (``http://host:port`` or ``http://host:port/``)."""
    parts = urlsplit(url)
    if parts.path in ("", "/") and not parts.query:
        return urlunsplit(parts._replace(path="/healthz"))
    return url


def healthcheck(url: str) -> int:
    """0 when ``url`` answers 200 within 3 s, else 1 with the reason on stderr."""
    url = health_target(url)
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            if resp.status == 200:
                return 0
            print(f"unhealthy: {url} answered {resp.status}", file=sys.stderr)
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
    return 1


def describe_config_error(exc: ConfigError) -> str:
    """One problem on one line; several as a count and one indented line each."""
    if len(exc.problems) <= 1:
        return f"config error: {exc}"
    return "\n".join(
        [f"config error: {len(exc.problems)} problems", *(f"  - {p}" for p in exc.problems)]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description="API gateway sidecar")
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "start the gateway"), ("check-config", "validate the config")):
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "--config", help="config file (default: $GATEWAY_CONFIG or config/gateway.yaml)"
        )
        if name == "run":  # set by the supervisor on the workers it starts (server.workers)
            p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
            p.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    hc = sub.add_parser("healthcheck", help="exit 0 when the local gateway answers /healthz")
    hc.add_argument(
        "--url",
        help="the gateway's base URL (http://host:port, /healthz is added) or a full URL to GET;"
        " default: /healthz on GATEWAY_OPS_LISTEN, else GATEWAY_LISTEN, else 127.0.0.1:8080",
    )
    args = parser.parse_args(argv)
    if args.command == "healthcheck":
        try:
            return healthcheck(args.url or health_url(os.environ))
        except ConfigError as exc:
            print(f"unhealthy: {exc}", file=sys.stderr)
            return 1
    try:
        config = load_config(args.config)
        level, fmt = log_settings(config.log_level, config.log_format, os.environ)
        tracing_enabled(os.environ)  # an unsupported OTEL_* exporter is refused here too
    except ConfigError as exc:
        print(describe_config_error(exc), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(
            f"config ok: {len(config.upstreams)} upstreams ({', '.join(sorted(config.upstreams))})"
        )
        return 0
    # One masker for the app and the log pipeline: every line the process writes,
    # in a request or not, masks the secrets its app knows (the supervisor's: the
    # configured ones).
    masker = SecretMasker()
    masker.remember_configured(secret_values(config))
    configure_logging(level, fmt, masker, cache_loggers=True)
    role = None
    if args.worker is not None:
        role = WorkerRole(args.worker, args.ready_fd, os.getppid(), os.environ[POD_DIR_ENV])
    try:
        if role is None and config.server.workers > 1:
            # The supervisor does little: asyncio's own loop (its subprocesses).
            return asyncio.run(supervise(config, args.config))
        eventloop.run(serve(config, args.config, role, masker))
    except OSError as exc:
        print(f"cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
