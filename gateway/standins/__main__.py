"""Run the four stand-ins in one process: ``python -m gateway.standins``.

Once all four listen, prints exactly one JSON line with their base URLs::

    {"bizzstream": "http://127.0.0.1:P1", "beeswax": "http://127.0.0.1:P2",
     "buzzstream": "http://127.0.0.1:P3/v1", "streamone": "http://127.0.0.1:P4"}

then serves until SIGINT or SIGTERM and exits 0. Port 0 picks a free port.
``--settings '{"beeswax": {"session_ttl": 1}}'`` overrides settings per app.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.standins import beeswax, bizzstream, buzzstream, streamone

AppFactory = Callable[[dict[str, Any] | None], web.Application]
# name -> (factory, default port, path suffix of the base URL)
STANDINS: dict[str, tuple[AppFactory, int, str]] = {
    "bizzstream": (bizzstream.create_app, 9101, ""),
    "beeswax": (beeswax.create_app, 9102, ""),
    "buzzstream": (buzzstream.create_app, 9103, "/v1"),
    "streamone": (streamone.create_app, 9104, ""),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.standins", description="Run the four upstream stand-ins."
    )
    parser.add_argument("--host", default="127.0.0.1")
    for name, (_, port, _) in STANDINS.items():
        parser.add_argument(f"--{name}-port", type=int, default=port, help="0 = any free port")
    parser.add_argument(
        "--settings", default="{}", help='JSON per-app overrides, e.g. {"beeswax": {...}}'
    )
    args = parser.parse_args(argv)
    try:
        overrides = json.loads(args.settings)
    except ValueError as exc:
        parser.error(f"--settings is not valid JSON: {exc}")
    if not isinstance(overrides, dict) or not all(
        name in STANDINS and isinstance(value, dict) for name, value in overrides.items()
    ):
        parser.error(f"--settings must map some of {sorted(STANDINS)} to objects")
    args.settings = overrides
    return args


def _url(host: str, port: int, suffix: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{suffix}"


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runners: list[web.AppRunner] = []
    urls: dict[str, str] = {}
    try:
        for name, (factory, _, suffix) in STANDINS.items():
            runner = web.AppRunner(
                factory(args.settings.get(name)), access_log=None, shutdown_timeout=1.0
            )
            runners.append(runner)
            await runner.setup()
            site = web.TCPSite(runner, args.host, getattr(args, f"{name}_port"))
            await site.start()
            port = int(runner.addresses[0][1])
            urls[name] = _url(args.host, port, suffix)
        sys.stdout.write(json.dumps(urls) + "\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
