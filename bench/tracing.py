"""Benchmark of tracing's cost (issue 15): off must cost nothing, on costs what it costs.

Gateway processes side by side in front of the stand-ins, loaded over loopback
by this process with ``GET /bizzstream/api/v1/documents`` (bench/limiter.py's
load generator), no Redis, no policy:

- ``--baseline DIR`` (optional): the gateway of another checkout, such as the
  commit before tracing existed (``git worktree add /tmp/base <commit>``);
- tracing off: this checkout, no ``OTEL_*`` variable;
- tracing on: this checkout, every span exported over OTLP/HTTP to a receiver
  on loopback (``OTEL_EXPORTER_OTLP_ENDPOINT``; sampler: always on).

The cases take turns for ``--rounds`` rounds and each prints its median
throughput and the gateway process's CPU time per call (user + system, from
``/proc``): on a busy machine the CPU time per call is the steadier figure.
Run with ``.venv/bin/python bench/tracing.py [--baseline DIR] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.limiter import PATH, Settings, gateway_throughput  # noqa: E402
from tests.harness import (  # noqa: E402
    free_port,
    gateway_env,
    launch_gateway,
    launch_standins,
)
from tests.tracing.otlp_receiver import otlp_receiver  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--gateway-concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny run (the smoke test)")
    args = parser.parse_args(argv)
    s = Settings(0, 0, args.seconds, args.gateway_concurrency, args.rounds)
    if args.quick:
        s = Settings(0, 0, 0.3, 4, 1)

    standins = launch_standins()
    port = free_port()
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"}
    cases: list[tuple[str, dict[str, str], Path]] = []
    if args.baseline is not None:
        cases.append((f"baseline ({args.baseline})", {}, args.baseline.resolve()))
    cases += [("tracing off", {}, ROOT), ("tracing on (OTLP/HTTP)", otel, ROOT)]
    print(
        f"gateway throughput: GET {PATH}, {s.gateway_concurrency} concurrent, "
        f"{s.seconds:g}s per case per round, median of {s.rounds} rounds"
    )
    gateways = []
    try:
        with otlp_receiver(port) as received:
            for _, extra, cwd in cases:
                env = gateway_env(standins, None, **extra)
                gateways.append(launch_gateway(env, cwd=cwd))
            rates: list[list[float]] = [[] for _ in cases]
            cpu: list[list[float]] = [[] for _ in cases]
            for _ in range(s.rounds):
                for i, gw in enumerate(gateways):
                    before = cpu_seconds(gw.proc.pid)
                    rate, statuses = asyncio.run(gateway_throughput(gw.url, s))
                    used = cpu_seconds(gw.proc.pid) - before
                    assert set(statuses) == {200}, statuses
                    rates[i].append(rate)
                    # the warm-up's calls are not in `statuses`: count them at the same rate
                    calls = rate * (s.seconds + min(1.0, s.seconds / 2))
                    cpu[i].append(used / calls * 1e6)
            for gw in gateways:
                gw.stop()
            exported = len(received.spans)
    finally:
        for gw in gateways:
            gw.stop()
        standins.stop()
    base = statistics.median(rates[0])
    base_cpu = statistics.median(cpu[0])
    for (label, *_), case_rates, case_cpu in zip(cases, rates, cpu, strict=True):
        rate = statistics.median(case_rates)
        used = statistics.median(case_cpu)
        print(
            f"  {label:32} {rate:7,.0f} req/s   ratio {rate / base:4.2f}   "
            f"{used:6.0f} µs CPU/call   ratio {used / base_cpu:4.2f}"
        )
    print(f"  spans received by the OTLP receiver: {exported}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
