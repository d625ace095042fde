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
import resource
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


TICK = os.sysconf("SC_CLK_TCK")
QUIET = 0.25  # cores of other work above which a round is not counted as quiet


def machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its children (nginx: the master and its worker)."""
    total = 0.0
    for each in (pid, *_children(pid)):
        stat = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(stat[11]) + int(stat[12])) / TICK
    return total


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has exited
    return usage.ru_utime + usage.ru_stime


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
    quiet: dict[int, list[bool]] = {1: [], 2: []}
    try:
        for round_ in range(args.rounds):
            for workers in (1, 2):
                gw = launch_gateway({**env, "GATEWAY_WORKERS": str(workers)})
                try:
                    time.sleep(2.0)  # every worker up (the harness waits for one)
                    wrk(gw.url + PATH, min(2, args.seconds))  # warm-up: pools, caches
                    start = time.monotonic()
                    marks = (machine_busy(), children_cpu(), tree_cpu(nginx.pid))
                    before = cpu_seconds(gw.url)
                    rate, p50 = wrk(gw.url + PATH, args.seconds)
                    gateway = cpu_seconds(gw.url) - before
                    # Busy CPU that was neither the gateway, wrk nor nginx: other work.
                    other = (
                        machine_busy() - marks[0] - gateway
                        - (children_cpu() - marks[1]) - (tree_cpu(nginx.pid) - marks[2])
                    ) / (time.monotonic() - start)  # fmt: skip
                    cpu_us = gateway / (rate * args.seconds) * 1e6
                finally:
                    gw.stop()
                    gw.log_path.unlink(missing_ok=True)
                results[workers].append(rate)
                quiet[workers].append(other < QUIET)
                print(
                    f"round {round_ + 1} workers={workers}: {rate:,.0f} req/s, p50 {p50}, "
                    f"gateway CPU {cpu_us:,.0f} µs per request, other work {other:.2f} cores"
                )
    finally:
        nginx.terminate()
        nginx.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    one, two = statistics.median(results[1]), statistics.median(results[2])
    print(f"median workers=1: {one:,.0f} req/s; workers=2: {two:,.0f} req/s", end="; ")
    print(f"ratio {two / one:.2f}x")
    pairs = [
        (a, b)
        for a, b, qa, qb in zip(results[1], results[2], quiet[1], quiet[2], strict=True)
        if qa and qb
    ]
    if pairs:
        ratios = ", ".join(f"{b / a:.2f}" for a, b in pairs)
        one, two = statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs)
        print(
            f"quiet rounds (other work < {QUIET} cores on both sides): {len(pairs)}, "
            f"ratios {ratios}; medians {one:,.0f} vs {two:,.0f} req/s: {two / one:.2f}x"
        )
    else:
        print(f"no quiet round (other work < {QUIET} cores on both sides)")
    print(f"(wrk -t1 -c32 -d{args.seconds}s, {os.cpu_count()} CPUs shared with nginx and wrk)")


if __name__ == "__main__":
    main()
