"""Command line: ``gateway run`` and ``gateway check-config`` (contract §5)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from aiohttp import web

from gateway.config import GatewayConfig, load_config
from gateway.errors import ConfigError
from gateway.logs import configure_logging, get_logger
from gateway.server.app import create_app
from gateway.server.keys import STATE

log = get_logger("gateway")


async def serve(config: GatewayConfig) -> None:
    """Serve until SIGTERM/SIGINT, then drain.

    On the signal, ``/readyz`` fails at once and new proxied calls are refused
    with 503; calls in flight (rate-limit waits included) get up to
    ``shutdown_grace`` seconds to finish; then the process exits 0.
    """
    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.listen_host, config.listen_port, reuse_address=True)
    await site.start()
    log.info(
        "started",
        listen=f"{config.listen_host}:{config.listen_port}",
        upstreams=sorted(config.upstreams),
        redis="configured" if config.redis.url else "none (per-process limits)",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    state = app[STATE]
    state.shutting_down = True
    log.info("draining", grace_seconds=config.shutdown_grace)
    deadline = loop.time() + config.shutdown_grace
    while loop.time() < deadline and _inflight(app) > 0:  # noqa: ASYNC110 - polls a counter
        await asyncio.sleep(0.05)
    await runner.shutdown()
    await runner.cleanup()
    log.info("stopped")


def _inflight(app: web.Application) -> int:
    return int(app[STATE].extras.get("inflight", 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description="API gateway sidecar")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "start the gateway"), ("check-config", "validate the config")):
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "--config", help="config file (default: $GATEWAY_CONFIG or config/gateway.yaml)"
        )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(
            f"config ok: {len(config.upstreams)} upstreams ({', '.join(sorted(config.upstreams))})"
        )
        return 0
    configure_logging(config.log_level, config.log_format)
    try:
        asyncio.run(serve(config))
    except OSError as exc:
        print(
            f"cannot listen on {config.listen_host}:{config.listen_port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
