"""Soak (issue 10): mixed traffic over the four stand-ins for ``--minutes`` (10).

Starts its own redis-server, the stand-ins (Beeswax rotating its session
cookie every ``--rotate-every`` calls) and one ``gateway run`` process on the
shipped config with ``REDIS_URL``, then runs at once:

- ``--workers`` callers of ordinary traffic to all four upstreams (BizzStream
  reads and writes and 200 KB downloads, Beeswax reads, BuzzStream paced
  reads, StreamOne signed calls), each call with its own ``X-Request-Id``;
- slow clients: bodies sent in pieces over ~1 s, downloads read slowly;
- disconnecting clients: a call left after 0.2 s, a body broken off halfway;
- one Redis restart (stopped for 3 s at 40 % of the run): the injected fault.

Every 5 s it samples the gateway's resident memory and open file descriptors;
every 30 s it takes (and clears) what the stand-ins recorded, counting each
``X-Request-Id`` per stand-in: a request id that reaches a stand-in twice is a
duplicate send, unless its first send was refused for its credentials (the
driver's one documented replay after a renewal, counted apart). It prints
start, peak and end of RSS and fds, answers by status, every 5xx with its
problem code, and the duplicates. Exit status 1 on a 5xx outside the Redis
outage or on a duplicate send.

    .venv/bin/python bench/soak.py [--minutes 10] [--workers 8]    # or: make soak
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.harness starts the processes

from tests.harness import (  # noqa: E402
    Gateway,
    RedisServer,
    Standins,
    gateway_env,
    launch_gateway,
    launch_standins,
    start_redis,
)

JSON = {"Content-Type": "application/json"}
DOCS = "/bizzstream/api/v1/documents?ddName=soak"
# (method, path, body) of the ordinary traffic
MIX: list[tuple[str, str, bytes | None]] = [
    ("GET", DOCS, None),
    ("POST", DOCS, b'{"n": 1}'),
    ("GET", "/bizzstream/__fault/big?size=200000", None),
    ("GET", "/beeswax/rest/advertiser", None),
    ("GET", "/buzzstream/websites?max_results=1", None),
    ("POST", "/streamone/item/view", b'{"id": "item1"}'),
]


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)  # "status code window"
    client_errors: Counter[str] = field(default_factory=Counter)
    outage: tuple[float, float] | None = None  # monotonic (down, recovered + 2 s)

    def answered(self, status: int, body: bytes) -> None:
        self.statuses[status] += 1
        if status >= 500:
            try:
                code = str(json.loads(body).get("code"))
            except ValueError:
                code = "not-a-problem"
            now = time.monotonic()
            during = self.outage is not None and self.outage[0] <= now <= self.outage[1]
            self.server_errors[f"{status} {code} {'redis-outage' if during else 'OUTSIDE'}"] += 1


def _rid() -> dict[str, str]:
    return {"X-Request-Id": uuid.uuid4().hex}


async def ordinary(session: aiohttp.ClientSession, url: str, tally: Tally, end: float) -> None:
    while time.monotonic() < end:
        method, path, body = random.choice(MIX)
        headers = {**_rid(), **(JSON if body else {})}
        try:
            async with session.request(method, url + path, data=body, headers=headers) as resp:
                tally.answered(resp.status, await resp.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.client_errors[type(exc).__name__] += 1


async def _trickle(pieces: int, every: float) -> AsyncIterator[bytes]:
    yield b'{"slow": "'
    for _ in range(pieces):
        await asyncio.sleep(every)
        yield b"x" * 512
    yield b'"}'


async def slow(session: aiohttp.ClientSession, url: str, tally: Tally, end: float) -> None:
    while time.monotonic() < end:
        try:
            path = "/bizzstream/__fault/echo"
            headers = {**_rid(), **JSON}
            data = _trickle(10, 0.1)
            async with session.post(url + path, data=data, headers=headers) as resp:
                tally.answered(resp.status, await resp.read())
            async with session.get(
                url + "/bizzstream/__fault/big?size=1000000", headers=_rid()
            ) as resp:
                while await resp.content.read(16384):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)  # a slow reader: ~1 s for 1 MB
                tally.answered(resp.status, b"")
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.client_errors[type(exc).__name__] += 1


async def leaving(host: str, port: int, tally: Tally, end: float) -> None:
    heads = [
        b"GET /bizzstream/__fault/sleep?seconds=2 HTTP/1.1\r\nHost: soak\r\n\r\n",
        b"POST /beeswax/rest/advertiser HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json"
        b'\r\nContent-Length: 1000\r\n\r\n{"half": ',
    ]
    while time.monotonic() < end:
        for head in heads:
            try:
                _, writer = await asyncio.open_connection(host, port)
                writer.write(head)
                await writer.drain()
                await asyncio.sleep(0.2)
                writer.close()  # the caller leaves
                tally.statuses[499] += 1  # as the gateway counts it
            except OSError as exc:
                tally.client_errors[type(exc).__name__] += 1
        await asyncio.sleep(0.3)


def _sample(pid: int) -> tuple[int, int]:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return rss, len(list(Path(f"/proc/{pid}/fd").iterdir()))


@dataclass
class Sends:
    seen: dict[str, dict[str, bool]] = field(default_factory=dict)  # upstream -> rid -> auth ok
    duplicates: Counter[str] = field(default_factory=Counter)
    replays: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)

    def collect(self, standins: Standins) -> None:
        for name in standins.urls:
            records = standins.seen(name)
            standins.admin(name, "/__standin/reset", {})
            ids = self.seen.setdefault(name, {})
            for record in records:
                headers = {k.lower(): v for k, v in record["headers"].items()}
                rid = headers.get("x-request-id")
                if rid is None:
                    continue
                self.total[name] += 1
                if rid in ids:
                    if ids[rid]:
                        self.duplicates[name] += 1
                    else:
                        self.replays[name] += 1
                ids[rid] = bool(record.get("auth_ok", True))


async def soak(
    args: argparse.Namespace, gw: Gateway, redis: RedisServer, standins: Standins
) -> int:
    seconds = args.minutes * 60
    host, port = gw.url.removeprefix("http://").split(":")
    tally, sends = Tally(), Sends()
    samples: list[tuple[float, int, int]] = []
    started = time.monotonic()
    end = started + seconds
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        tasks = [ordinary(session, gw.url, tally, end) for _ in range(args.workers)]
        tasks += [slow(session, gw.url, tally, end) for _ in range(2)]
        tasks += [leaving(host, int(port), tally, end) for _ in range(2)]
        traffic = asyncio.gather(*tasks)
        restarted = False
        next_collect = started + 30
        while not traffic.done():
            await asyncio.sleep(5)
            now = time.monotonic()
            samples.append((now - started, *_sample(gw.proc.pid)))
            if not restarted and now - started >= 0.4 * seconds:
                restarted = True
                down = time.monotonic()
                await asyncio.to_thread(redis.stop)
                await asyncio.sleep(3)
                await asyncio.to_thread(redis.start)
                tally.outage = (down, time.monotonic() + 2 * 1.0 + 2)  # probe interval + slack
                print(f"[{now - started:5.0f}s] redis restarted (down 3 s)", flush=True)
            if now >= next_collect:
                await asyncio.to_thread(sends.collect, standins)
                next_collect = now + 30
                rss, fds = samples[-1][1:]
                done = sum(tally.statuses.values())
                print(f"[{now - started:5.0f}s] rss {rss / 2**20:.1f} MiB, fds {fds}, "
                      f"answers {done}", flush=True)  # fmt: skip
        await traffic
    await asyncio.sleep(1)
    samples.append((time.monotonic() - started, *_sample(gw.proc.pid)))
    await asyncio.to_thread(sends.collect, standins)
    async with aiohttp.ClientSession() as session, session.get(gw.url + "/metrics") as resp:
        metrics = await resp.text()
    return report(args, tally, sends, samples, metrics)


def _gateway_counts(metrics: str) -> dict[str, float]:
    """The gateway's own count of answers by status, and its sheds and upstream failures."""
    out: Counter[str] = Counter()
    for line in metrics.splitlines():
        name, _, value = line.rpartition(" ")
        if line.startswith("gateway_requests_total{"):
            status = name.split('status="')[1].split('"')[0]
            out[f"status {status}"] += float(value)
        elif line.startswith(("gateway_load_shed_total{", "gateway_upstream_failures_total{")):
            if float(value):
                out[name.removeprefix("gateway_")] += float(value)
        elif line.startswith("gateway_circuit_openings_total{"):
            out["redis breaker openings"] += float(value)
    return dict(sorted(out.items()))


def report(
    args: argparse.Namespace,
    tally: Tally,
    sends: Sends,
    samples: list[tuple[float, int, int]],
    metrics: str,
) -> int:
    warm = [s for s in samples if s[0] >= 30] or samples  # after the first 30 s
    rss = [s[1] / 2**20 for s in warm]
    fds = [s[2] for s in warm]
    total = sum(tally.statuses.values())
    print(f"\nsoak: {args.minutes:g} min, {args.workers} ordinary + 2 slow + 2 leaving callers")
    print(f"answers: {total} by status {dict(sorted(tally.statuses.items()))}")
    print(f"RSS MiB (from 30 s): start {rss[0]:.1f}, peak {max(rss):.1f}, end {rss[-1]:.1f}")
    print(f"open fds (from 30 s): start {fds[0]}, peak {max(fds)}, end {fds[-1]}")
    print(f"5xx: {dict(tally.server_errors) or 'none'}")
    print(f"client-side errors: {dict(tally.client_errors) or 'none'}")
    print(f"the gateway's own counts: {_gateway_counts(metrics)}")
    print(f"sends seen by the stand-ins: {dict(sends.total)}")
    print(f"duplicate sends: {dict(sends.duplicates) or 'none'}")
    print(f"replays after a credential refusal (documented, once): {dict(sends.replays) or 'none'}")
    outside = sum(n for key, n in tally.server_errors.items() if key.endswith("OUTSIDE"))
    return 1 if outside or sends.duplicates else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rotate-every", type=int, default=5)
    args = parser.parse_args(argv)
    redis = start_redis()
    standins = launch_standins({"beeswax": {"rotate_every": args.rotate_every}})
    gw = None
    try:
        env = gateway_env(standins, redis.url, GATEWAY_LOG_LEVEL="warning")
        gw = launch_gateway(env)
        return asyncio.run(soak(args, gw, redis, standins))
    finally:
        if gw is not None:
            gw.stop()
        standins.stop()
        redis.stop()


if __name__ == "__main__":
    sys.exit(main())
