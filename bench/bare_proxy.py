"""Setup B of ``bench/speed.py``: a bare aiohttp reverse proxy, the yardstick.

One aiohttp server and one shared ClientSession; every request goes to
``--upstream`` + its path and query, the reply is streamed back. No auth, no
limits, no logs, no metrics: what any aiohttp proxy costs. It runs on the
gateway's own event loop (``gateway.eventloop.run``: uvloop when installed).

    python bench/bare_proxy.py --port 8090 --upstream http://127.0.0.1:8091
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import aiohttp
from aiohttp import web

from gateway import eventloop

HOP = frozenset(
    "connection keep-alive proxy-authenticate proxy-authorization te trailer "
    "transfer-encoding upgrade host content-length".split()
)
SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def proxy(request: web.Request) -> web.StreamResponse:
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP]
    body = request.content if request.body_exists else None
    url = request.app[UPSTREAM] + request.raw_path
    async with request.app[SESSION].request(
        request.method, url, headers=headers, data=body, allow_redirects=False
    ) as up:
        reply = web.StreamResponse(status=up.status)
        reply.headers.extend((k, v) for k, v in up.headers.items() if k.lower() not in HOP)
        if up.content_length is not None:
            reply.content_length = up.content_length
        await reply.prepare(request)
        async for chunk in up.content.iter_any():
            await reply.write(chunk)
        await reply.write_eof()
        return reply


async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
    connector = aiohttp.TCPConnector(limit=100)  # the gateway's pool_size
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        app[SESSION] = session
        yield


async def serve(port: int, upstream: str) -> None:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", proxy)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    eventloop.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
