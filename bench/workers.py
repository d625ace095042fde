"""Throughput of ``server.workers`` 1 against 2 (issue 12, item 3), one run.

A fixed upstream (Debian's nginx, ``worker_processes 1``, a fixed JSON reply
to every path) and real ``gateway run`` processes with ``GATEWAY_WORKERS`` 1
and 2 in front of it (BizzStream, static token, no Redis: route C of issue
12), loaded with ``wrk -t1 -c32`` over loopback in interleaved rounds. The
load generator, nginx and the gateway share this machine's cores, so the
ratio understates what a second core gives a gateway that has them alone.

Needs ``nginx`` and ``wrk`` on the PATH. ``.venv/bin/python bench/workers.py
[--rounds N] [--seconds S] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.harness starts the processes

from gateway.devrun import STANDIN_CREDENTIALS  # noqa: E402
from tests.harness import free_port, launch_gateway, wait_port  # noqa: E402

NGINX_CONF = """daemon off;
worker_processes 1;
error_log {dir}/error.log;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 1000000;
    location / {{
      default_type application/json;
      return 200 '{{"items":[{{"id":1,"name":"fixed"}}],"total":1}}';
    }}
  }}
}}
"""
PATH = "/bizzstream/api/v1/documents?ddName=bench"


def start_nginx(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=port))
    proc = subprocess.Popen(
        [shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(workdir), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc, f"http://127.0.0.1:{port}"


def wrk(url: str, seconds: int) -> tuple[float, str]:
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    return rate, p50.group(1) if p50 else "?"


def cpu_seconds(url: str) -> float:
    """The gateway's CPU time (every process of the pod with workers > 1)."""
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    match = re.search(r"^process_cpu_seconds_total (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    nginx, upstream = start_nginx(workdir)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env.update(STANDIN_CREDENTIALS)
    for name in ("BIZZSTREAM", "BEESWAX", "BUZZSTREAM", "STREAMONE"):
        env[f"{name}_URL"] = upstream
    env["GATEWAY_LOG_FORMAT"] = "json"
    results: dict[int, list[float]] = {1: [], 2: []}
    try:
        for round_ in range(args.rounds):
            for workers in (1, 2):
                gw = launch_gateway({**env, "GATEWAY_WORKERS": str(workers)})
                try:
                    time.sleep(2.0)  # every worker up (the harness waits for one)
                    wrk(gw.url + PATH, min(2, args.seconds))  # warm-up: pools, caches
                    before = cpu_seconds(gw.url)
                    rate, p50 = wrk(gw.url + PATH, args.seconds)
                    cpu_us = (cpu_seconds(gw.url) - before) / (rate * args.seconds) * 1e6
                finally:
                    gw.stop()
                    gw.log_path.unlink(missing_ok=True)
                results[workers].append(rate)
                print(
                    f"round {round_ + 1} workers={workers}: {rate:,.0f} req/s, p50 {p50}, "
                    f"gateway CPU {cpu_us:,.0f} µs per request"
                )
    finally:
        nginx.terminate()
        nginx.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    one, two = statistics.median(results[1]), statistics.median(results[2])
    print(f"median workers=1: {one:,.0f} req/s; workers=2: {two:,.0f} req/s", end="; ")
    print(f"ratio {two / one:.2f}x")
    print(f"(wrk -t1 -c32 -d{args.seconds}s, {os.cpu_count()} CPUs shared with nginx and wrk)")


if __name__ == "__main__":
    main()
