"""Real processes for end-to-end tests: redis-server, the stand-ins, gateways.

Nothing is mocked: each helper starts a real process on a free loopback port
and stops it again.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.devrun import standin_env, start_standins

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "gateway.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@dataclass
class RedisServer:
    url: str
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def start(self) -> None:
        """(Re)start the throwaway server on the same port."""
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(self.port)


def start_redis() -> RedisServer:
    port = free_port()
    server = RedisServer(url=f"redis://127.0.0.1:{port}/0", port=port)
    server.start()
    return server


@dataclass
class Standins:
    proc: subprocess.Popen[str]
    urls: dict[str, str]

    def admin(self, upstream: str, path: str, payload: Any = None) -> Any:
        """Call a stand-in's inspection routes (``/__standin/...``)."""
        base = self.urls[upstream].removesuffix("/v1")
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(
            base + path, data=data, method="POST" if data is not None or "reset" in path
            or "expire" in path else "GET", headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def stats(self, upstream: str) -> dict[str, int]:
        return dict(self.admin(upstream, "/__standin/stats"))

    def seen(self, upstream: str) -> list[dict[str, Any]]:
        return list(self.admin(upstream, "/__standin/requests"))

    def reset(self) -> None:
        for name in self.urls:
            self.admin(name, "/__standin/reset", {})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:  # the pipe its URLs came on (no ResourceWarning)
            self.proc.stdout.close()


def launch_standins(settings: dict[str, Any] | None = None) -> Standins:
    args = [f"--{n}-port=0" for n in ("bizzstream", "beeswax", "buzzstream", "streamone")]
    if settings:
        args += ["--settings", json.dumps(settings)]
    proc, urls = start_standins(args)
    return Standins(proc, urls)


@dataclass
class Gateway:
    proc: subprocess.Popen[str]
    url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def logs(self) -> str:
        return self.log_path.read_text()

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.logs().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


def gateway_env(standins: Standins, redis_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL") and k != "REDIS_URL"}
    env.update(standin_env(standins.urls))
    env["GATEWAY_LOG_FORMAT"] = "json"
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    if env.get("REDIS_URL"):  # shared upstream sessions are encrypted with it
        env.setdefault("GATEWAY_TOKEN_STORE_KEY", "test-fleet-store-key")
    return env


def launch_gateway(
    env: dict[str, str], config: Path | str = CONFIG, port: int | None = None, cwd: Path = ROOT
) -> Gateway:
    """``gateway run``; ``cwd`` another checkout runs that checkout's code (bench A/B)."""
    port = port or free_port()
    env = {**env, "GATEWAY_LISTEN": f"127.0.0.1:{port}"}
    log_file = Path(tempfile.mkstemp(prefix="gateway-", suffix=".log")[1])
    with log_file.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(config)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
        )
    gw = Gateway(proc, f"http://127.0.0.1:{port}", log_file, env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited {proc.returncode}: {gw.logs()[-2000:]}")
        try:
            with urllib.request.urlopen(gw.url + "/healthz", timeout=1):
                return gw
        except OSError:
            time.sleep(0.05)
    gw.stop()
    raise RuntimeError("gateway did not become healthy")


@contextlib.contextmanager
def running_gateway(env: dict[str, str], config: Path | str = CONFIG) -> Iterator[Gateway]:
    gw = launch_gateway(env, config)
    try:
        yield gw
    finally:
        gw.stop()


def call(
    gw: Gateway | str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Send ``path`` exactly as given and return (status, lower-cased headers, body)."""
    url = gw if isinstance(gw, str) else gw.url
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def write_config(tmp: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """The shipped config with ``change`` applied to its parsed YAML, as a new file."""
    data = yaml.safe_load(CONFIG.read_text())
    change(data)
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_bench(script: str) -> str:
    """Run ``bench/<script> --quick`` (tiny sizes) as a user would; its printed figures."""
    result = subprocess.run(
        [sys.executable, f"bench/{script}", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout
