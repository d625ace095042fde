"""The fixed upstream of ``bench/speed.py``: nginx, or a small asyncio server if there is none.

Every route's path answers a fixed small JSON body, and so do the calls the
gateway's auths make at start or on a first call (docs/upstreams.md, auth.md):
BizzStream's OAuth 2 client-credentials grant, Beeswax's login (with its session
cookie), StreamOne's ``session/initialize`` and ``session/create``. Nothing is
verified: the upstream is fixed so that only the proxy in front of it varies.

The base URLs (what the gateway's ``base_url`` points at) are
``<upstream>/bizzstream``, ``/beeswax``, ``/buzzstream/v1`` and ``/streamone``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STREAMONE_HEAD = {
    "status": 0, "statusmessage": "OK", "apiversion": 3, "cacheable": False, "timezone": "UTC",
}  # fmt: skip


def answers(port: int) -> list[tuple[str, str, dict[str, str]]]:
    """(path prefix, JSON body, extra headers), most specific prefix first."""
    base = f"http://127.0.0.1:{port}"
    routes: list[tuple[str, object, dict[str, str]]] = [
        ("/bizzstream/oauth/token",
         {"access_token": "bench-token", "token_type": "Bearer", "expires_in": 86400}, {}),
        ("/bizzstream/api/",
         {"status": "ok", "documents": [{"_id": "d1", "name": "bench", "n": 1}]}, {}),
        ("/beeswax/rest/authenticate",
         {"success": "true", "message": "Cookie set successfully"},
         {"Set-Cookie": "bench_buzz_cookie=bench-session; Path=/; HttpOnly"}),
        ("/beeswax/", {"success": True, "payload": [{"advertiser_id": 1}]}, {}),
        ("/buzzstream/v1/",
         {"list": [f"{base}/buzzstream/v1/websites/1"], "offset": 0, "numResults": 1}, {}),
        ("/streamone/api/session/initialize",
         {"header": STREAMONE_HEAD,
          "body": {"challenge": "bench", "salt": "$2y$04$KUPxtN.Lr5dN.6hiiLssre",
                   "needsv2hash": False}}, {}),
        ("/streamone/api/session/create",
         {"header": STREAMONE_HEAD,
          "body": {"id": "bench-session", "key": "bench-key", "timeout": 86400,
                   "user": {"id": "user"}}}, {}),
        ("/streamone/api/",
         {"header": STREAMONE_HEAD, "body": {"id": "item1", "title": "bench"}}, {}),
    ]  # fmt: skip
    return [(p, json.dumps(b, separators=(",", ":")), h) for p, b, h in routes]


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def nginx_config(tmp: Path, port: int) -> str:
    def escape(body: str) -> str:
        body = body.replace("\\", "\\\\").replace("'", "\\'")
        return body.replace("$", "${dollar}")  # nginx has no escape for '$' in a string

    locations = "\n".join(
        f"    location {path} {{\n"
        + "".join(f"      add_header {k} '{escape(v)}';\n" for k, v in headers.items())
        + f"      return 200 '{escape(body)}';\n    }}"
        for path, body, headers in answers(port)
    )
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "\n".join(f"  {kind}_temp_path {tmp}/{kind};" for kind in kinds)
    return f"""daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp}
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  default_type application/json;
  geo $dollar {{ default "$"; }}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
{locations}
    location / {{ return 404 '{{"message":"no such bench route"}}'; }}
  }}
}}
"""


@dataclass
class Upstream:
    kind: str  # what serves: "nginx 1.22.1" or "asyncio fallback"
    url: str
    proc: subprocess.Popen[bytes]

    @property
    def pids(self) -> list[int]:
        return [self.proc.pid]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(
                signal.SIGQUIT if self.kind.startswith("nginx") else signal.SIGTERM
            )
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_upstream(
    tmp: Path, port: int, wait: Callable[[int], None], force_fallback: bool = False
) -> Upstream:
    """nginx with a generated config in ``tmp`` (``-p tmp``, no daemon), else the fallback."""
    binary = None if force_fallback else nginx_binary()
    if binary is not None:
        conf = tmp / "nginx.conf"
        conf.write_text(nginx_config(tmp, port))
        version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()
        proc = subprocess.Popen(
            [binary, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        kind = version.removeprefix("nginx version: ").replace("/", " ")
    else:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--port", str(port)],
            stdout=subprocess.DEVNULL,
        )
        kind = "asyncio fallback (no nginx)"
    upstream = Upstream(kind, f"http://127.0.0.1:{port}", proc)
    try:
        wait(port)
    except RuntimeError:
        upstream.stop()
        raise RuntimeError(f"the upstream ({kind}) did not start: see {tmp}/error.log") from None
    return upstream


# --- the fallback: a minimal HTTP/1.1 keep-alive server on asyncio ---------------------


class _Fixed(asyncio.Protocol):
    def __init__(self, table: list[tuple[bytes, bytes]], missing: bytes) -> None:
        self.table = table
        self.missing = missing
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head = self.buf[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            target = head.split(b" ", 2)[1]
            reply = next((r for p, r in self.table if target.startswith(p)), self.missing)
            assert self.transport is not None
            self.transport.write(reply)


def _reply(status: str, body: str, headers: dict[str, str]) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


async def _serve(port: int) -> None:
    table = [(p.encode(), _reply("200 OK", b, h)) for p, b, h in answers(port)]
    missing = _reply("404 Not Found", '{"message":"no such bench route"}', {})
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Fixed(table, missing), "127.0.0.1", port, reuse_address=True, backlog=4096
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="the fallback fixed upstream")
    parser.add_argument("--port", type=int, required=True)
    with contextlib.suppress(ImportError):
        import uvloop  # a fast loop for the fallback upstream when it is there

        uvloop.install()
    asyncio.run(_serve(parser.parse_args().port))
