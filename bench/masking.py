"""Benchmark of secret masking under rotating credentials (issue 10, items 4 and 5).

Every Beeswax cookie rotation remembers one more run-time secret in the app's
masker (``gateway.core.secrets.SecretMasker``), and every log line and problem
body is masked against all known secrets. Two parts, in one run:

1. **In process**: ``--rotations`` times, the real Beeswax cookie jar stores a
   new ``Set-Cookie`` (which remembers the value in the masker), then one
   request log line goes through the real structlog pipeline (its
   ``SecretRedactor`` holding that masker) to
   ``/dev/null``; the loop yields after each rotation while a monitor task
   measures how late the event loop wakes it (the lag a gateway's callers
   would see). Prints the time per rotation, the loop lag (p99, max), the RSS
   before and after, the cost of masking one ~650-character line with the
   registry full, and whether a configured secret is still masked at the end.
2. **End to end**: the Beeswax stand-in rotates its session cookie on every
   call (``rotate_every: 1``) and a real ``gateway run`` process is called
   ``--rotations`` times, sequentially, while ``/healthz`` is probed every
   20 ms. Prints the gateway's RSS before and after (and its peak), the probe
   latency (p99, max) and the rotations the stand-in counted.

``.venv/bin/python bench/masking.py [--rotations N] [--quick] [--skip-e2e]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets as random_tokens  # stdlib (this file is not named secrets.py for that reason)
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.harness starts the processes

from gateway import logs  # noqa: E402
from gateway.core.secrets import SecretMasker  # noqa: E402
from gateway.upstreams.beeswax_cookies import CookieJar  # noqa: E402
from tests.harness import gateway_env, launch_gateway, launch_standins  # noqa: E402

CONFIGURED = "configured-beeswax-password"
LINE = (
    '{"event": "request", "method": "GET", "path": "/beeswax/rest/v2/campaigns", '
    '"status": 200, "upstream": "beeswax", "duration_ms": 12.3, "user": "alice", '
    '"request_id": "0123456789abcdef0123456789abcdef", "detail": "the upstream said no"} '
) * 3


def rss_kib(pid: int | str = "self") -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class LagMonitor:
    """How late the event loop wakes a task that asked to sleep ``interval``."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval, self.lags, self._task = interval, list[float](), None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags.append(time.perf_counter() - started - self.interval)

    def __enter__(self) -> LagMonitor:
        self._task = asyncio.get_running_loop().create_task(self._run())  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def log_to_devnull(masker: SecretMasker) -> None:
    """The gateway's log pipeline (JSON, redacted with ``masker``), writing to /dev/null."""
    saved = sys.stdout
    sys.stdout = open(os.devnull, "w")  # kept open for the whole run
    try:
        logs.configure_logging("info", "json", masker)
    finally:
        sys.stdout = saved


async def in_process(rotations: int, masker: SecretMasker) -> None:
    log = logs.get_logger("bench")
    masker.remember_configured([CONFIGURED])
    jar = CookieJar(masker=masker)
    for i in range(20):  # warm up: structlog's first lines
        log.info("warm-up", n=i)
    rss_start, _ = rss_kib()
    per: list[float] = []
    steps: list[str] = []
    checkpoint = max(1, rotations // 5)
    with LagMonitor() as lag:
        for i in range(rotations):
            value = random_tokens.token_urlsafe(24)
            started = time.perf_counter()
            jar.store(f"standin_buzz_cookie={value}; Path=/; HttpOnly")
            log.info("request", detail=f"upstream echoed {value}", n=i)
            per.append(time.perf_counter() - started)
            if (i + 1) % checkpoint == 0:
                steps.append(f"{i + 1:,}: {mib(rss_kib()[0])}")
            await asyncio.sleep(0)
    rss_end, rss_peak = rss_kib()
    started = time.perf_counter()
    for _ in range(1000):
        masker.mask(LINE)
    line_us = (time.perf_counter() - started) * 1000
    masked = CONFIGURED not in masker.mask(f"x {CONFIGURED} x")
    print(f"in process, {rotations:,} rotations, {len(LINE)}-character lines")
    print(f"  per rotation (register + one log line): mean {statistics.mean(per) * 1e6:.0f} us, "
          f"max {max(per) * 1e3:.1f} ms")  # fmt: skip
    print(f"  loop lag: p99 {pct(lag.lags, 0.99) * 1e3:.2f} ms, max {max(lag.lags) * 1e3:.2f} ms")
    print(f"  RSS: start {mib(rss_start)}, end {mib(rss_end)}, peak {mib(rss_peak)}")
    print(f"  RSS after rotations {'; '.join(steps)}")
    print(f"  known secrets at the end: {masker.runtime:,} run-time, "
          f"{masker.configured} configured")  # fmt: skip
    print(f"  masking one line with the registry full: {line_us:.1f} us")
    print(f"  configured secret still masked: {'yes' if masked else 'NO'}")


async def end_to_end(rotations: int) -> None:
    standins = launch_standins({"beeswax": {"rotate_every": 1}})
    gateway = launch_gateway(gateway_env(standins))
    try:
        probes: list[float] = []
        async with aiohttp.ClientSession() as session:

            async def probe() -> None:
                while True:
                    started = time.perf_counter()
                    async with session.get(gateway.url + "/healthz") as resp:
                        await resp.read()
                    probes.append(time.perf_counter() - started)
                    await asyncio.sleep(0.02)

            async def call() -> None:
                url = gateway.url + "/beeswax/rest/v2/campaigns?rows=1"
                async with session.get(url) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status

            for _ in range(20):  # warm up: log in, first rotations
                await call()
            before = rss_kib(gateway.proc.pid)
            stats_before = standins.stats("beeswax").get("session_rotated", 0)
            prober = asyncio.create_task(probe())
            started = time.perf_counter()
            steps = []
            for i in range(rotations):
                await call()
                if (i + 1) % max(1, rotations // 5) == 0:
                    steps.append(f"{i + 1:,}: {mib(rss_kib(gateway.proc.pid)[0])}")
            elapsed = time.perf_counter() - started
            prober.cancel()
            after = rss_kib(gateway.proc.pid)
        rotated = standins.stats("beeswax").get("session_rotated", 0) - stats_before
    finally:
        gateway.stop()
        standins.stop()
    print(f"end to end, {rotations:,} calls through `gateway run`, Beeswax rotating every call")
    print(f"  stand-in rotations: {rotated:,}; {rotations / elapsed:,.0f} calls/s")
    print(f"  /healthz latency meanwhile: p99 {pct(probes, 0.99) * 1e3:.1f} ms, "
          f"max {max(probes) * 1e3:.1f} ms ({len(probes)} probes)")  # fmt: skip
    print(f"  gateway RSS: start {mib(before[0])}, end {mib(after[0])}, peak {mib(after[1])}")
    print(f"  gateway RSS after calls {'; '.join(steps)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rotations", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="200 rotations (smoke test)")
    parser.add_argument("--skip-e2e", action="store_true", help="only the in-process part")
    args: Any = parser.parse_args()
    rotations = 200 if args.quick else args.rotations
    masker = SecretMasker()  # the app's, as `gateway run` makes it
    log_to_devnull(masker)
    asyncio.run(in_process(rotations, masker))
    if not args.skip_e2e:
        asyncio.run(end_to_end(rotations))


if __name__ == "__main__":
    main()
