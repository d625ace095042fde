"""Benchmark of the quota path (issue 4), all in one run, on this machine.

1. Decisions per second of the Redis limiter alone (``RedisLimiter.acquire``
   in this process against its own redis-server), with concurrent decisions
   batched into shared pipelines and without (``redis.batch``).
2. Gateway throughput with limits on against the same gateway with limits off:
   real ``gateway run`` processes in front of the stand-ins, loaded over
   loopback by this process.

   - off: no ``REDIS_URL`` and no policy on the upstream: no Redis round trip;
   - on: ``REDIS_URL`` set and one policy on the upstream, too wide to bind,
     so every call makes one ``EVALSHA`` (batched, then unbatched).

It starts (and stops) its own redis-server, stand-ins and gateways. Run it
with ``make bench`` or ``.venv/bin/python bench/limiter.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.harness starts the processes

from gateway.config import RatePolicy, RedisConfig  # noqa: E402
from gateway.config_reader import Secret  # noqa: E402
from gateway.metrics import create_metrics  # noqa: E402
from gateway.server.limiter_redis import RedisLimiter  # noqa: E402
from tests.harness import (  # noqa: E402
    CONFIG,
    RedisServer,
    Standins,
    gateway_env,
    launch_gateway,
    launch_standins,
    start_redis,
)

PATH = "/bizzstream/api/v1/documents?ddName=bench"
WIDE = RatePolicy(
    name="bench", match="*", methods=frozenset(), limit=1_000_000_000, period=1.0,
    burst=1_000_000_000, on_exceed="reject", max_delay=0.0, shadow=False, scope="account",
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    decisions: int
    concurrency: int
    seconds: float
    gateway_concurrency: int
    rounds: int


async def limiter_alone(url: str, batch: bool, s: Settings) -> tuple[float, float, int]:
    """Decisions/s, round trips per decision, decisions that fell back to memory."""
    conn = aioredis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    config = RedisConfig(Secret(url), 1.0, "local", 1, "bench", 60.0)
    limiter = RedisLimiter(conn, config, create_metrics(), batch=batch)
    await limiter.start()
    left = s.decisions
    fallbacks = 0

    async def worker() -> None:
        nonlocal left, fallbacks
        while left > 0:
            left -= 1
            decision = await limiter.acquire("bizzstream", [WIDE], "bench-account", None)
            fallbacks += decision.backend != "redis"

    await asyncio.gather(*(worker() for _ in range(s.concurrency)))  # warm the pool
    left = s.decisions
    trips = limiter.runner.round_trips
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(s.concurrency)))
    took = time.perf_counter() - started
    trips = limiter.runner.round_trips - trips
    await limiter.aclose()
    await conn.aclose()
    return s.decisions / took, trips / s.decisions, fallbacks


async def gateway_throughput(url: str, s: Settings) -> tuple[float, dict[int, int]]:
    """Requests/s over ``s.seconds`` with ``s.gateway_concurrency`` callers."""
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=s.gateway_concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(deadline: float) -> None:
            while time.perf_counter() < deadline:
                async with session.get(url + PATH) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1

        warm = time.perf_counter() + min(1.0, s.seconds / 2)
        await asyncio.gather(*(worker(warm) for _ in range(s.gateway_concurrency)))
        statuses.clear()
        started = time.perf_counter()
        deadline = started + s.seconds
        await asyncio.gather(*(worker(deadline) for _ in range(s.gateway_concurrency)))
        took = time.perf_counter() - started
    return sum(statuses.values()) / took, statuses


def gateway_config(tmp: Path, name: str, policies: list[dict[str, Any]], batch: bool) -> Path:
    config = yaml.safe_load(CONFIG.read_text())
    config["upstreams"]["bizzstream"]["rate_limits"] = policies
    config["redis"]["batch"] = batch
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_gateways(standins: Standins, redis: RedisServer, s: Settings, tmp: Path) -> None:
    """All three gateways run side by side; the cases take turns, ``s.rounds``
    times, and each reports its median: the machine's other load then weighs
    on every case alike."""
    wide = [{"name": "bench", "limit": 1_000_000_000, "period": "1s", "on_exceed": "reject"}]
    cases = [
        ("limits off (no Redis, no policy)", None, [], True),
        ("limits on  (Redis, batched)", redis.url, wide, True),
        ("limits on  (Redis, unbatched)", redis.url, wide, False),
    ]
    print(
        f"gateway throughput: GET {PATH}, {s.gateway_concurrency} concurrent, "
        f"{s.seconds:g}s per case per round, median of {s.rounds} rounds"
    )
    gateways = []
    try:
        for i, (_, redis_url, policies, batch) in enumerate(cases):
            config = gateway_config(tmp, f"case{i}", policies, batch)
            gateways.append(launch_gateway(gateway_env(standins, redis_url), config))
        rates: list[list[float]] = [[] for _ in cases]
        totals: list[dict[int, int]] = [{} for _ in cases]
        for _ in range(s.rounds):
            for i, gw in enumerate(gateways):
                rate, statuses = asyncio.run(gateway_throughput(gw.url, s))
                rates[i].append(rate)
                for status, count in statuses.items():
                    totals[i][status] = totals[i].get(status, 0) + count
    finally:
        for gw in gateways:
            gw.stop()
    base = statistics.median(rates[0])
    for (label, *_), case_rates, statuses in zip(cases, rates, totals, strict=True):
        rate = statistics.median(case_rates)
        print(f"  {label:34} {rate:9,.0f} req/s   ratio {rate / base:4.2f}   statuses {statuses}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--gateway-concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny run (the smoke test)")
    args = parser.parse_args(argv)
    s = Settings(
        args.decisions, args.concurrency, args.seconds, args.gateway_concurrency, args.rounds
    )
    if args.quick:
        s = Settings(200, 8, 0.3, 4, 1)

    import tempfile

    redis = start_redis()
    standins = launch_standins()
    try:
        print(
            f"redis limiter alone: 1 hot key, {s.concurrency} concurrent, "
            f"{s.decisions} decisions, median of {s.rounds} rounds"
        )
        runs: dict[bool, list[tuple[float, float, int]]] = {True: [], False: []}
        for _ in range(s.rounds):
            for batch in (True, False):
                runs[batch].append(asyncio.run(limiter_alone(redis.url, batch, s)))
        for batch, results in runs.items():
            rate = statistics.median(r[0] for r in results)
            trips = statistics.median(r[1] for r in results)
            label = "batched  " if batch else "unbatched"
            print(f"  {label} {rate:10,.0f} decisions/s   {trips:.3f} round trips/decision"
                  f"   fallbacks {sum(r[2] for r in results)}")  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            run_gateways(standins, redis, s, Path(tmp))
    finally:
        standins.stop()
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
