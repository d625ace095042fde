"""Instructions per request under callgrind: a measure of the hot path that other load
on the machine does not move (issue 12).

wrk's req/s and CPU µs per request vary by ±15% between rounds on a shared VM, more
than most single hot-path changes. Callgrind counts the instructions a process runs
(user space only: the kernel's share, socket writes and reads, is not counted), the
same figure run after run for the same code and input (PYTHONHASHSEED is fixed).

For each proxy it starts the process under ``valgrind --tool=callgrind`` with
instrumentation off, sends ``--warmup`` calls, turns instrumentation on
(``callgrind_control -i on``), sends ``--n`` calls one after another on one
keep-alive connection, turns it off and reads the total. The proxies are B (the bare
proxy, bench/bare_proxy.py) and the gateway of each ``--tree`` (a checkout: compare
two commits with ``--tree before=/path/a --tree after=/path/b``; default: this one),
on the route of ``--setup`` (speed.py's C, D, E1 or E2; D with its own
redis-server), all in front of the same fixed upstream (nginx, else
bench/upstream.py's asyncio server). D's calls go one at a time, so each is a
round trip of its own: its count is the unbatched worst case, not D under load.

    .venv/bin/python bench/instructions.py                      # C, this checkout
    .venv/bin/python bench/instructions.py --setup E1 --n 2000
    .venv/bin/python bench/instructions.py --tree old=/tmp/old --tree new=.
"""

from __future__ import annotations

import argparse
import glob
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.speed import BIZZ_GET, WIDE, gateway_env, stop  # noqa: E402
from bench.upstream import start_upstream  # noqa: E402
from tests.harness import CONFIG, free_port, start_redis, wait_port  # noqa: E402

ROUTES: dict[str, tuple[str, str, bytes | None, dict[str, str]]] = {
    "C": ("GET", BIZZ_GET, None, {}),
    "D": ("GET", BIZZ_GET, None, {}),  # C with one Redis decision per call (speed.py's D)
    "E1": ("GET", "/buzzstream/websites?max_results=2", None, {}),
    "E2": ("POST", "/streamone/item/view", b'{"id": "item1"}',
           {"Content-Type": "application/json"}),
}  # fmt: skip


def calls(port: int, route: tuple[str, str, bytes | None, dict[str, str]], n: int) -> None:
    method, path, body, headers = route
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        for _ in range(n):
            conn.request(method, path, body, headers)
            reply = conn.getresponse()
            reply.read()
            if reply.status != 200:
                raise RuntimeError(f"{method} {path} answered {reply.status}")
    finally:
        conn.close()


def config_for(tmp: Path, setup: str) -> Path:
    data: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    if setup == "E1":  # the shipped 5-per-second policy would pace the run (as in speed.py)
        data["upstreams"]["buzzstream"]["rate_limits"] = []
    if setup == "D":  # one policy too wide to bind: every call is one Redis decision
        data["upstreams"]["bizzstream"]["rate_limits"] = [WIDE]
    path = tmp / f"gateway-{setup}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def measure(cmd: list[str], cwd: Path, env: dict[str, str], port: int, route: Any,
            a: argparse.Namespace, out: Path) -> float:  # fmt: skip
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    with (out.parent / f"{out.name}.log").open("wb") as log:
        proc = subprocess.Popen(vg + cmd, cwd=cwd, env={**env, "PYTHONHASHSEED": "0"},
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_port(port, timeout=120)
        calls(port, route, a.warmup)
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True,
                       capture_output=True)  # fmt: skip
        calls(port, route, a.n)
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True,
                       capture_output=True)  # fmt: skip
    finally:
        stop(proc)
    total = 0
    for name in glob.glob(f"{out}*"):
        if name.endswith(".log"):
            continue
        for line in Path(name).read_text(errors="replace").splitlines():
            if line.startswith(("totals:", "summary:")):
                total = max(total, int(line.split()[1]))
    if not total:
        raise RuntimeError(f"callgrind counted nothing for {cmd}")
    return total / a.n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", choices=sorted(ROUTES), default="C")
    parser.add_argument("--n", type=int, default=1000, help="calls counted")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--quick", action="store_true", help="20 calls (the smoke test)")
    a = parser.parse_args(argv)
    if a.quick:
        a.n, a.warmup = 20, 5
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    trees = [t.partition("=")[::2] for t in a.tree] or [("gateway", str(ROOT))]
    route = ROUTES[a.setup]
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp_name:
        tmp = Path(tmp_name)
        upstream = start_upstream(tmp, free_port(), wait_port, False)
        redis = start_redis() if a.setup == "D" else None
        try:
            print(f"callgrind, {a.n} sequential calls after {a.warmup}, route {a.setup} "
                  f"({route[0]} {route[1]}), upstream {upstream.kind}", flush=True)  # fmt: skip
            port = free_port()
            bare = [sys.executable, str(ROOT / "bench" / "bare_proxy.py"), "--port", str(port),
                    "--upstream", upstream.url]  # fmt: skip
            b_route = ("GET", BIZZ_GET, None, {})  # the bare proxy passes any path on
            base = measure(bare, ROOT, dict(os.environ), port, b_route, a, tmp / "cg-B")
            print(
                "| proxy | instructions per call | B's ÷ this (as a speed ratio) |\n|---|---|---|"
            )
            print(f"| B bare aiohttp proxy | {base:,.0f} | 1.00 |", flush=True)
            for name, tree in trees:
                port = free_port()
                redis_url = None if redis is None else redis.url
                env = {**gateway_env(upstream, redis_url), "GATEWAY_LISTEN": f"127.0.0.1:{port}"}
                cmd = [sys.executable, "-m", "gateway", "run", "--config",
                       str(config_for(tmp, a.setup))]  # fmt: skip
                started = time.monotonic()
                ir = measure(cmd, Path(tree), env, port, route, a, tmp / f"cg-{name}")
                print(f"| {a.setup} {name} ({tree}) | {ir:,.0f} | {base / ir:.2f} |"
                      f"  ({time.monotonic() - started:.0f} s)", flush=True)  # fmt: skip
        finally:
            if redis is not None:
                redis.stop()
            upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
