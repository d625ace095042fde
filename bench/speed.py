"""The gateway against a bare aiohttp proxy, in front of a fixed upstream, in one run (issue 12).

``make bench`` (or ``.venv/bin/python bench/speed.py [--quick] [--soak N]``) starts:

- a fixed upstream: nginx with a generated config in a temp dir (bench/upstream.py),
  or, without nginx, a small asyncio server (it says which);
- **B** the bare aiohttp reverse proxy (bench/bare_proxy.py) on the gateway's event loop;
- the gateway as real ``python -m gateway run`` processes, base URLs pointing at the
  upstream: **C** BizzStream GET without Redis; **D** BizzStream GET with one policy
  too wide to bind, decided in its own throwaway redis-server (batched, as shipped);
  **E1** BuzzStream GET, OAuth 1.0a signed; **E2** StreamOne POST, HMAC signed;
  **C×2** C with ``workers: 2`` when this gateway has that setting;
- and **A**, nginx direct, as the floor.

Then it loads them in interleaved rounds (each setup in turn, every round, so the
machine's other load weighs on all alike) and prints medians: req/s and p50/p99
with 32 connections (wrk), CPU per request of the proxy's processes
(``/proc/<pid>/stat`` utime + stime), the ratio to B, p50 at one connection and
what the proxy adds there over nginx direct, p50/p99 at a fixed open-loop rate of
half B's throughput (bench/loadgen.py), Redis commands and round trips per call
for D, and each gateway's RSS and requests served at the end; with the issue's
targets, pass or fail. ``--soak N`` then pushes N more requests through C,
sampling its RSS every 50,000.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.upstream import Upstream, start_upstream  # noqa: E402
from gateway import eventloop  # noqa: E402
from gateway.devrun import STANDIN_CREDENTIALS  # noqa: E402
from tests.harness import CONFIG, RedisServer, free_port, start_redis, wait_port  # noqa: E402

LOADGEN = ROOT / "bench" / "loadgen.py"
WORKERS = ("server", "workers")  # the worker-processes setting (issue 12, item 3)
FALLBACKS = "gateway_ratelimit_fallback_decisions_total"  # decided without Redis
BIZZ_GET = "/bizzstream/api/v1/documents?ddName=bench"
WIDE = {"name": "bench", "limit": 1_000_000_000, "period": "1s", "on_exceed": "reject"}
TICK = os.sysconf("SC_CLK_TCK")
PHASES = {"load": "32 connections", "c1": "1 connection", "open": "open loop ½ B",
          "open_c": "open loop ½ C"}  # fmt: skip


@dataclass(frozen=True)
class Settings:
    rounds: int = 3
    seconds: float = 8.0  # per setup per round, 32 connections
    connections: int = 32
    c1_seconds: float = 3.0  # per setup per round, one connection
    rate_seconds: float = 4.0  # per setup per round and rate, open loop
    warmup: float = 1.0


QUICK = Settings(rounds=1, seconds=1.0, c1_seconds=1.0, rate_seconds=0.5, warmup=0.0)


@dataclass
class Target:
    ratio: float | None = None  # req/s ≥ this × B
    added_ms: float | None = None  # p50 at one connection minus nginx direct's
    p99_ms: float | None = None  # p99 at the open-loop rate
    rss_mb: float | None = None
    versus: str = "B"  # what the ratio is to


@dataclass
class Setup:
    key: str
    label: str
    port: int
    method: str = "GET"
    path: str = BIZZ_GET
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    target: Target = field(default_factory=Target)
    proc: subprocess.Popen[bytes] | None = None
    root_pids: list[int] = field(default_factory=list)
    gateway: bool = False
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The setup's processes: the roots and their children (nginx's worker, gateway workers)."""
        return self.root_pids + [p for r in self.root_pids for p in descendants(r)]

    def raw_request(self) -> bytes:
        head = f"{self.method} {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        if self.body or self.method == "POST":
            head += f"Content-Length: {len(self.body)}\r\n"
        return head.encode() + b"\r\n" + self.body


# --- /proc -------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def machine_busy() -> float:
    """CPU seconds every core spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / TICK


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def started_loop(log: Path) -> str | None:
    """The event loop a gateway's ``started`` log line names (``event_loop``)."""
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") == "started":
                return str(entry.get("event_loop"))
    return None


def with_workers(data: dict[str, Any]) -> None:
    data.setdefault(WORKERS[0], {})[WORKERS[1]] = 2


# --- load: wrk, or bench/loadgen.py ----------------------------------------------


class Load:
    """Closed loop (wrk, else bench/loadgen.py ``closed``) and open loop (loadgen ``open``)."""

    def __init__(self, tmp: Path, use_wrk: bool = True) -> None:
        self.tmp = tmp
        self.wrk = shutil.which("wrk") if use_wrk else None
        version = "" if self.wrk is None else _wrk_version(self.wrk)
        self.closed_kind = f"wrk {version}" if self.wrk else "bench/loadgen.py closed (no wrk)"

    def _script(self, setup: Setup) -> Path:
        lines = [f'wrk.method = "{setup.method}"']
        if setup.body:
            lines.append(f"wrk.body = {json.dumps(setup.body.decode())}")
        lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in setup.headers.items()]
        path = self.tmp / f"{setup.key}.lua"
        path.write_text("\n".join(lines) + "\n")
        return path

    def closed(self, setup: Setup, conns: int, seconds: float) -> dict[str, Any]:
        if self.wrk is None:
            args = ["--conns", str(conns), "--seconds", str(seconds)]
            return self._loadgen(setup, "closed", args)
        seconds = max(1, round(seconds))  # wrk takes whole seconds
        args = [self.wrk, f"-c{conns}", "-t1", f"-d{seconds}s", "--latency", "--timeout", "10s",
                "-s", str(self._script(setup)), setup.url + setup.path]  # fmt: skip
        out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
        if out.returncode != 0:
            raise RuntimeError(f"wrk failed: {out.stderr[-500:]}")
        return parse_wrk(out.stdout)

    def open(self, setup: Setup, rate: float, seconds: float) -> dict[str, Any]:
        return self._loadgen(setup, "open", ["--rate", f"{rate:.1f}", "--seconds", str(seconds)])

    def _loadgen(self, setup: Setup, mode: str, args: list[str]) -> dict[str, Any]:
        request = self.tmp / f"{setup.key}.http"
        request.write_bytes(setup.raw_request())
        cmd = [sys.executable, str(LOADGEN), mode, "--port", str(setup.port),
               "--request-file", str(request), *args]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
        if out.returncode != 0:
            raise RuntimeError(f"loadgen failed: {out.stderr[-500:]}")
        result: dict[str, Any] = json.loads(out.stdout)
        result.setdefault("requests", result.get("answered", 0))
        return result


def _wrk_version(binary: str) -> str:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True)
    found = re.search(r"wrk (?:debian/)?([\d.]+)", out.stdout + out.stderr)
    return found.group(1) if found else "?"


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(text: str) -> dict[str, Any]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    count = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    pct = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", text, re.M))
    if not (rps and count and len(pct) == 2):
        raise RuntimeError(f"unexpected wrk output: {text[-500:]}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    lat = {k: _ms(*re.fullmatch(r"([\d.]+)(\w+)", v).groups()) for k, v in pct.items()}  # type: ignore[union-attr]
    return {
        "rps": float(rps.group(1)), "requests": int(count.group(1)),
        "p50_ms": lat["50"], "p99_ms": lat["99"],
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "errors": sum(map(int, errors.groups())) if errors else 0,
    }  # fmt: skip


# --- processes --------------------------------------------------------------------


def gateway_env(upstream: Upstream, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("_URL") and not k.startswith(("OTEL_", "GATEWAY_"))}  # fmt: skip
    env.update(STANDIN_CREDENTIALS)
    base = upstream.url
    env.update(
        BIZZSTREAM_URL=f"{base}/bizzstream",
        BEESWAX_URL=f"{base}/beeswax",
        BUZZSTREAM_URL=f"{base}/buzzstream/v1",
        STREAMONE_URL=f"{base}/streamone",
    )
    if redis_url:
        env.update(REDIS_URL=redis_url, GATEWAY_TOKEN_STORE_KEY="bench-store-key")
    return env


def gateway_config(tmp: Path, key: str, change: Callable[[dict[str, Any]], None]) -> Path:
    data = yaml.safe_load(CONFIG.read_text())
    change(data)
    path = tmp / f"gateway-{key}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def accepts(config: Path, env: dict[str, str]) -> bool:
    cmd = [sys.executable, "-m", "gateway", "check-config", "--config", str(config)]
    return subprocess.run(cmd, env=env, capture_output=True, cwd=ROOT).returncode == 0


def spawn_gateway(setup: Setup, config: Path, env: dict[str, str], tmp: Path) -> None:
    env = {**env, "GATEWAY_LISTEN": f"127.0.0.1:{setup.port}"}
    with (tmp / f"gateway-{setup.key}.log").open("wb") as log:
        setup.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(config)],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    setup.root_pids = [setup.proc.pid]
    setup.gateway = True


def wait_healthy(setup: Setup, tmp: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert setup.proc is not None
        if setup.proc.poll() is not None:
            log = (tmp / f"gateway-{setup.key}.log").read_text()[-2000:]
            raise RuntimeError(f"gateway {setup.key} exited {setup.proc.returncode}: {log}")
        try:
            with urllib.request.urlopen(setup.url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gateway {setup.key} did not become healthy")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def metric(setup: Setup, name: str) -> float:
    """The sum of every series of counter ``name`` on the gateway's ``/metrics``."""
    with urllib.request.urlopen(setup.url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(m) for m in re.findall(rf"^{name}(?:\{{.*\}})? (\S+)$", text, re.M))


def served(setup: Setup) -> int:
    """Requests the gateway counted (``gateway_requests_total``, all series)."""
    return round(metric(setup, "gateway_requests_total"))


# --- the run --------------------------------------------------------------------------


class Bench:
    def __init__(self, tmp: Path, s: Settings, fallbacks: bool = False) -> None:
        self.tmp, self.s = tmp, s
        self.load = Load(tmp, use_wrk=not fallbacks)
        self.upstream = start_upstream(tmp, free_port(), wait_port, fallbacks)
        self.redis: RedisServer | None = None
        self.setups: list[Setup] = []
        self.notes: list[str] = []
        self.redis_stats: list[dict[str, float]] = []
        self.loop_name = "asyncio"

    def close(self) -> None:
        for setup in self.setups:
            stop(setup.proc)
        if self.redis is not None:
            self.redis.stop()
        self.upstream.stop()

    # setups ---------------------------------------------------------------------------

    def start_gateways(self, workers: bool = True) -> None:
        self.redis = start_redis()
        plain = gateway_env(self.upstream, None)

        def drop_buzz_policy(d: dict[str, Any]) -> None:
            d["upstreams"]["buzzstream"]["rate_limits"] = []

        def wide_bizz_policy(d: dict[str, Any]) -> None:
            d["upstreams"]["bizzstream"]["rate_limits"] = [WIDE]

        wanted = [
            (Setup("C", "gateway, BizzStream GET, no Redis", free_port(),
                   target=Target(0.7, 0.5, 5.0, 80.0)), lambda d: None, plain),
            (Setup("D", "gateway, BizzStream GET, Redis limiter (batched)", free_port(),
                   target=Target(0.6, 0.8, 5.0, 80.0)), wide_bizz_policy,
             gateway_env(self.upstream, self.redis.url)),
            (Setup("E1", "gateway, BuzzStream GET, OAuth 1.0a", free_port(),
                   path="/buzzstream/websites?max_results=2",
                   target=Target(0.55, 0.8, None, 80.0)), drop_buzz_policy, plain),
            (Setup("E2", "gateway, StreamOne POST, HMAC", free_port(), method="POST",
                   path="/streamone/item/view", body=b'{"id": "item1"}',
                   headers={"Content-Type": "application/json"},
                   target=Target(0.55, 0.8, None, 80.0)), lambda d: None, plain),
        ]  # fmt: skip
        two = gateway_config(self.tmp, "C2", with_workers)
        if workers and accepts(two, plain):
            c2 = Setup("C2", "gateway, as C, 2 workers", free_port(),
                       target=Target(1.7, None, None, 80.0, versus="C"))  # fmt: skip
            wanted.append((c2, with_workers, plain))
        elif not workers:
            self.notes.append("C, 2 workers: not run (--no-workers)")
        else:
            self.notes.append(
                f"C, 2 workers: not run: this gateway does not accept `{'.'.join(WORKERS)}: 2`"
                " (the key is WORKERS in bench/speed.py)"
            )
        for setup, change, env in wanted:
            spawn_gateway(setup, gateway_config(self.tmp, setup.key, change), env, self.tmp)
            self.setups.append(setup)
        for setup in self.setups:
            wait_healthy(setup, self.tmp)
        loops = {started_loop(self.tmp / f"gateway-{x.key}.log") for x in self.setups}
        self.loop_name = "/".join(sorted(str(x) for x in loops))  # None: an older gateway
        if loops - {eventloop.loop_name()}:
            self.notes.append(f"the gateways said event_loop={loops}; the bare proxy ran on "
                              f"{eventloop.loop_name()}")  # fmt: skip

    def start_fixed(self) -> None:
        """A (nginx direct) and B (the bare proxy, on the gateway's loop) go first in the table."""
        a = Setup(
            "A", f"{self.upstream.kind} direct (floor)", int(self.upstream.url.rsplit(":", 1)[1])
        )
        a.root_pids = self.upstream.pids
        port = free_port()
        b = Setup("B", f"bare aiohttp proxy ({eventloop.loop_name()})", port)
        with (self.tmp / "bare.log").open("wb") as log:
            b.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "bare_proxy.py"), "--port", str(port),
                 "--upstream", self.upstream.url],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        b.root_pids = [b.proc.pid]
        wait_port(port)
        self.setups[:0] = [a, b]

    def check_answers(self) -> None:
        """Each setup answers its request with a 2xx before anything is measured."""
        for setup in self.setups:
            conn = http.client.HTTPConnection("127.0.0.1", setup.port, timeout=30)
            try:
                conn.request(setup.method, setup.path, setup.body or None, setup.headers)
                reply = conn.getresponse()
                body = reply.read()
            finally:
                conn.close()
            if not 200 <= reply.status < 300:
                raise RuntimeError(f"setup {setup.key} answered {reply.status}: {body[:500]!r}")

    # phases ---------------------------------------------------------------------------

    def measure(self, setup: Setup, phase: str, run: Callable[[], dict[str, Any]]) -> None:
        pids = setup.pids()
        redis_before = None
        if setup.key == "D" and phase == "load":
            redis_before = {**self._redis_info(), "local": metric(setup, FALLBACKS)}
        ours = pids + ([self.redis.proc.pid] if self.redis and self.redis.proc else [])
        busy, gen = machine_busy(), children_cpu()
        cpu, redis_cpu, wall = cpu_seconds(pids), cpu_seconds(ours), time.monotonic()
        result = run()
        took = time.monotonic() - wall
        used = cpu_seconds(pids) - cpu
        result["cpu_us"] = used * 1e6 / max(1, result["requests"])
        result["cpu_cores"] = used / took
        # what the rest of the machine took meanwhile: all busy CPU minus the setup's
        # processes, redis-server and the load generator (a child of this process)
        mine = (cpu_seconds(ours) - redis_cpu) + (children_cpu() - gen)
        result["other_cores"] = max(0.0, (machine_busy() - busy - mine) / took)
        if redis_before is not None:
            delta = self._redis_delta(redis_before, result["requests"])
            delta["local"] = (metric(setup, FALLBACKS) - redis_before["local"]) / max(
                1, result["requests"]
            )
            self.redis_stats.append(delta)
        setup.runs.setdefault(phase, []).append(result)

    def rounds(self) -> None:
        s = self.s
        for setup in self.setups:  # warm: pools, tokens, first calls
            if s.warmup:
                self.load.closed(setup, s.connections, s.warmup)
        self.phase("load", lambda x: self.load.closed(x, s.connections, s.seconds))
        self.phase("c1", lambda x: self.load.closed(x, 1, s.c1_seconds))
        for phase, of in (("open", "B"), ("open_c", "C")):
            rate = self.median(of, "load", "rps") / 2
            self.phase(phase, lambda x, r=rate: self.load.open(x, r, s.rate_seconds))

    def phase(self, name: str, run: Callable[[Setup], dict[str, Any]]) -> None:
        """Every setup in turn, ``rounds`` times."""
        for _ in range(self.s.rounds):
            for setup in self.setups:
                self.measure(setup, name, lambda: run(setup))  # noqa: B023

    def median(self, key: str, phase: str, name: str) -> float:
        setup = next(x for x in self.setups if x.key == key)
        return statistics.median(r[name] for r in setup.runs[phase])

    # Redis -------------------------------------------------------------------------

    def _redis_info(self) -> dict[str, float]:
        import redis

        assert self.redis is not None and self.redis.proc is not None
        with redis.Redis.from_url(self.redis.url) as conn:
            info = conn.info("all")
        calls = {k.removeprefix("cmdstat_"): float(v["calls"]) for k, v in info.items()
                 if k.startswith("cmdstat_")}  # fmt: skip
        return {
            **{f"cmd:{k}": v for k, v in calls.items()},
            "commands": sum(calls.values()),
            "reads": float(info["total_reads_processed"]),
            "cpu": cpu_seconds([self.redis.proc.pid]),
        }

    def _redis_delta(self, before: dict[str, float], requests: int) -> dict[str, float]:
        after = self._redis_info()
        after["cmd:info"] = after.get("cmd:info", 0) - 1  # our own INFO (the first one)
        n = max(1, requests)
        per = {k: (v - before.get(k, 0)) / n for k, v in after.items() if k.startswith("cmd:")}
        return {
            **{k: v for k, v in per.items() if v > 0},
            "commands": (after["commands"] - before["commands"] - 1) / n,
            # the second INFO's read event is in the delta; the first one's is not
            "trips": (after["reads"] - before["reads"] - 1) / n,
            "cpu_us": (after["cpu"] - before["cpu"]) * 1e6 / n,
        }


# --- the table -------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "pass" if ok else "**FAIL**"


def _cell(value: float, fmt: str, limit: float | None, ok: bool, sign: str) -> str:
    text = format(value, fmt)
    return text if limit is None else f"{text} {verdict(ok)} ({sign}{limit:g})"


def row(bench: Bench, setup: Setup, floor_c1: float) -> str:
    med = partial_median(setup)
    t = setup.target
    ratio_base = bench.median(t.versus, "load", "rps")
    ratio = med("load", "rps") / ratio_base
    added = med("c1", "p50_ms") - floor_c1
    p99_open = [(phase, med(phase, "p99_ms")) for phase in ("open", "open_c")]
    ratio_cell = (
        ""
        if setup.key in ("A", "B") and t.ratio is None
        else _cell(ratio, ".2f", t.ratio, t.ratio is None or ratio >= t.ratio, "≥")
        + ("" if t.versus == "B" else f" ×{t.versus}")
    )
    cells = [
        f"{setup.key} {setup.label}",
        f"{med('load', 'rps'):,.0f}",
        ratio_cell if setup.key != "A" else "",
        f"{med('load', 'p50_ms'):.2f} / {med('load', 'p99_ms'):.2f}",
        f"{med('load', 'cpu_us'):,.0f}",
        f"{med('c1', 'p50_ms'):.3f}",
        "" if setup.key == "A" else _cell(
            added, "+.3f", t.added_ms, t.added_ms is None or added <= t.added_ms, "≤"),
        *(f"{med(phase, 'p50_ms'):.2f} / " + _cell(p99, ".2f", t.p99_ms,
          t.p99_ms is None or p99 <= t.p99_ms, "≤") for phase, p99 in p99_open),
        rss_cell(setup),
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def partial_median(setup: Setup) -> Callable[[str, str], float]:
    def med(phase: str, name: str) -> float:
        return statistics.median(r[name] for r in setup.runs[phase])

    return med


def rss_cell(setup: Setup) -> str:
    """RSS of the gateway process (with workers: the parent, then each worker) and its count."""
    if not setup.gateway:
        return ""
    sizes = [rss_mb(p) for p in setup.pids()]
    workers = sizes[1:] or sizes  # the limit is per worker; a lone process is its own worker
    limit = setup.target.rss_mb
    ok = limit is None or max(workers) <= limit
    shown = " + ".join(f"{x:.0f}" for x in sizes)
    return f"{shown} {verdict(ok)} (≤{limit:g}), {served(setup):,} served"


def header(bench: Bench, s: Settings) -> list[str]:
    info = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    cpu = models[0] if models else platform.processor()
    return [
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {cpu}, nproc {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.2f} at the end",
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}; event loop: "
        f"{bench.loop_name} in the gateways (their 'started' line), {eventloop.loop_name()} in "
        f"the bare proxy: uvloop {'in use' if 'uvloop' in bench.loop_name else 'not in use'}",
        f"upstream: {bench.upstream.kind}; closed-loop load: {bench.load.closed_kind}, "
        f"{s.connections} connections, 1 thread, {s.seconds:g} s per setup per round; one "
        f"connection: {s.c1_seconds:g} s; open loop: bench/loadgen.py (Python asyncio, latency "
        f"from each request's scheduled time), {s.rate_seconds:g} s; medians of {s.rounds} "
        "interleaved rounds; the load generators share the machine's cores with the proxies",
    ]


def report(bench: Bench) -> list[str]:
    s = bench.s
    floor_c1 = bench.median("A", "c1", "p50_ms")
    half_b = bench.median("B", "load", "rps") / 2
    half_c = bench.median("C", "load", "rps") / 2
    lines = [
        *header(bench, s),
        "",
        f"| setup | req/s ({s.connections} conns) | ratio to B (target) | p50 / p99 ms "
        "| CPU µs/req | p50 ms at 1 conn | added p50 ms vs A (target) "
        f"| open loop {half_b:,.0f}/s (½ B): p50 / p99 ms (target) "
        f"| open loop {half_c:,.0f}/s (½ C): p50 / p99 ms (target) | RSS MB at end, served |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [row(bench, setup, floor_c1) for setup in bench.setups]
    lines.append("")
    if bench.redis_stats:
        keys = {k for r in bench.redis_stats for k in r}
        med = {k: statistics.median(r.get(k, 0.0) for r in bench.redis_stats) for k in keys}
        names = sorted((k for k in keys if k.startswith("cmd:")), key=lambda k: -med[k])
        each = ", ".join(f"{k[4:].upper()} {med[k]:.3f}" for k in names if med[k] >= 0.001)
        lines.append(
            f"D Redis per call: {med['commands']:.3f} commands executed ({each}; commandstats "
            "also counts the commands a script runs: only EVALSHA is sent), "
            f"{med['trips']:.3f} round trips, {med['local']:.3f} decisions made without Redis "
            f"({FALLBACKS}), redis-server CPU {med['cpu_us']:.0f} µs "
            "(INFO commandstats calls and INFO stats total_reads_processed deltas over D's "
            f"{s.connections}-connection runs, divided by the calls answered: one read event "
            "per pipeline the server receives)"
        )
    for setup in bench.setups:
        bad = {
            PHASES[phase]: sum(r.get("non2xx", 0) + r.get("errors", 0) for r in runs)
            for phase, runs in setup.runs.items()
        }
        statuses: dict[str, int] = {}
        for r in (r for runs in setup.runs.values() for r in runs):
            for code, n in r.get("statuses", {}).items():
                statuses[code] = statuses.get(code, 0) + n
        if any(bad.values()):
            each = ", ".join(f"{n:,} at {phase}" for phase, n in bad.items() if n)
            if statuses:
                each += "; statuses seen by the open loop: " + ", ".join(
                    f"{code}: {n:,}" for code, n in sorted(statuses.items())
                )
            lines.append(f"{setup.key}: non-2xx answers or errors: {each} (all rounds)")
    return lines + dispatch_lag(bench) + other_work(bench) + bench.notes


def other_work(bench: Bench) -> list[str]:
    """The cores the rest of the machine (other sessions, the harness) took during the runs."""
    per = {x.key: [r["other_cores"] for rs in x.runs.values() for r in rs] for x in bench.setups}
    every = [v for values in per.values() for v in values]
    if not every:
        return []
    each = ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in per.items() if v)
    return [
        f"other work on the machine during the runs (cores; busy CPU from /proc/stat minus the "
        f"setup's, redis-server's and the load generator's): median {statistics.median(every):.2f}"
        f", max {max(every):.2f}; median per setup: {each}"
    ]


def dispatch_lag(bench: Bench) -> list[str]:
    """How late the open-loop generator itself sent, over all its runs: a run where it
    was several ms late measured its own stalls as much as the proxy."""
    lags = [r["send_lag_p99_ms"] for x in bench.setups for p in ("open", "open_c")
            for r in x.runs.get(p, [])]  # fmt: skip
    if not lags:
        return []
    late = sum(lag > 5 for lag in lags)
    return [
        f"open-loop generator's own dispatch lag p99, over its {len(lags)} runs: median "
        f"{statistics.median(lags):.2f} ms, max {max(lags):.1f} ms; {late} runs over 5 ms "
        "(held up by the machine, or by an overloaded proxy on the same cores; row A's "
        "open-loop figures are the floor it measures)"
    ]


# --- soak -------------------------------------------------------------------------------


def soak(bench: Bench, total: int, step: int = 50_000) -> list[str]:
    """``total`` more requests through C in runs of about ``step`` (sized from the last
    run's rate: wrk stops on time, not on a count), RSS after each."""
    c = next(x for x in bench.setups if x.key == "C")
    assert c.proc is not None
    conns = bench.s.connections
    lines = [
        f"soak: {total:,} requests through C ({bench.load.closed_kind}, {conns} connections), "
        f"RSS about every {step:,}"
    ]
    samples = [(served(c), rss_mb(c.proc.pid))]
    rate = bench.load.closed(c, conns, 2)["rps"]  # the rate that sizes the first run
    while (done := served(c) - samples[0][0]) < total:
        n = min(step, total - done)
        result = bench.load.closed(c, conns, max(1.0, n / max(rate, 1.0)))
        rate = result["rps"]
        samples.append((served(c), rss_mb(c.proc.pid)))
        print(f"  served {samples[-1][0]:>9,}  RSS {samples[-1][1]:6.1f} MB", flush=True)
    half = samples[len(samples) // 2][1]
    growth = samples[-1][1] - half
    ok = samples[-1][1] <= 80 and growth <= 2.0
    lines += [f"  served {count:>9,}  RSS {mb:6.1f} MB" for count, mb in samples]
    lines.append(
        f"  RSS at the end {samples[-1][1]:.1f} MB, {growth:+.1f} MB over the second half: "
        f"{verdict(ok)} (≤ 80 MB and flat: ≤ +2 MB over the second half)"
    )
    return lines


@contextlib.contextmanager
def running(s: Settings, fallback: bool, workers: bool) -> Iterator[Bench]:
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        bench = Bench(Path(tmp), s, fallback)
        try:
            bench.start_gateways(workers)
            bench.start_fixed()
            bench.check_answers()
            yield bench
        finally:
            bench.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 short round (the smoke test)")
    parser.add_argument("--rounds", type=int, default=Settings.rounds)
    parser.add_argument("--seconds", type=float, default=Settings.seconds)
    parser.add_argument("--soak", type=int, default=0, metavar="N",
                        help="then push N requests through C, RSS every 50,000")  # fmt: skip
    parser.add_argument("--soak-only", action="store_true", help="skip the table")
    parser.add_argument("--no-workers", action="store_true", help="skip the 2-worker row")
    fallbacks = "the asyncio upstream and the Python load generator even with nginx and wrk"
    parser.add_argument("--fallbacks", action="store_true", help=fallbacks)
    args = parser.parse_args(argv)
    s = QUICK if args.quick else Settings(rounds=args.rounds, seconds=args.seconds)
    with running(s, args.fallbacks, not args.no_workers) as bench:
        if not args.soak_only:
            print("running: " + ", ".join(x.key for x in bench.setups), flush=True)
            bench.rounds()
            print("\n".join(report(bench)), flush=True)
        if args.soak:
            print("\n".join(soak(bench, args.soak)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
