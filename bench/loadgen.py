"""Load generators of ``bench/speed.py`` written in Python (asyncio, raw sockets).

- ``open``: **open loop** at a fixed rate. Request *i* is due at ``t0 + i / rate``
  whatever happened to the others: it goes out on an idle keep-alive connection,
  or a new one (up to ``--max-conns``), or waits for the first connection to come
  free. Its latency is measured from the time it was *due*, not from when it was
  sent, so a stalled server is charged for every request it held up
  (coordinated-omission correct, as wrk2 does). ``h2load --rate`` cannot do this:
  its rate is the rate at which connections are opened, each of which then sends
  its requests closed loop.
- ``closed``: ``--conns`` connections, each sending its next request as soon as
  the previous answer arrived (what wrk does): the fallback when wrk is missing,
  and the ``--soak`` driver's fallback. ``--requests`` stops after that many.

It runs in a process of its own and prints one JSON object. ``--request-file``
holds the exact request bytes (HTTP/1.1, keep-alive); ``open`` prints the
latency percentiles, the number answered, non-2xx answers, errors, and
``send_lag_p99_ms``, how late the generator itself dispatched (its own floor).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any


def response_length(buf: bytearray) -> int:
    """Bytes of the first complete HTTP/1.1 response in ``buf``, or -1 if incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return -1
    head = bytes(buf[:end]).lower()
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        stop = head.find(b"\r\n", at + 2)
        total = end + 4 + int(head[at + 17 : stop if stop >= 0 else None])
        return total if len(buf) >= total else -1
    if b"\r\ntransfer-encoding: chunked" not in head:
        return end + 4  # 204/304 or no body
    pos = end + 4
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return -1
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", eol)
            if trailer_end == eol:  # no trailers: "0\r\n\r\n"
                return eol + 4 if len(buf) >= eol + 4 else -1
            return trailer_end + 4 if trailer_end >= 0 else -1
        pos = eol + 2 + size + 2
        if pos > len(buf):
            return -1


# Timestamps: time.perf_counter, not loop.time() (uvloop's counts whole milliseconds,
# and a sub-millisecond sleep on it spins). The generator runs on asyncio's own loop,
# whose epoll waits are rounded up to the next millisecond: it never spins.
CLOCK = time.perf_counter


class Conn(asyncio.Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.started: float | None = None  # when the request in flight was due or sent

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, started: float) -> None:
        assert self.transport is not None
        self.started = started
        self.transport.write(self.gen.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        size = response_length(self.buf)
        if size >= 0:
            status = int(self.buf[9:12])
            del self.buf[:size]
            started, self.started = self.started, None
            assert started is not None
            self.gen.answered(self, started, status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gen.lost(self)


class Generator:
    def __init__(self, host: str, port: int, request: bytes, max_conns: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.host, self.port, self.request, self.max_conns = host, port, request, max_conns
        self.idle: list[Conn] = []
        self.backlog: deque[float] = deque()
        self.latencies: list[float] = []
        self.non2xx = self.errors = self.opened = self.outstanding = 0
        self.statuses: dict[int, int] = {}  # non-2xx answers by status
        self.closed_loop_until: float | None = None  # closed loop: resend until then
        self.limit: int | None = None  # closed loop: stop after this many answers

    async def connect(self) -> Conn:
        _, conn = await self.loop.create_connection(lambda: Conn(self), self.host, self.port)
        return conn

    def answered(self, conn: Conn, started: float, status: int) -> None:
        now = CLOCK()
        self.latencies.append(now - started)
        self.outstanding -= 1
        if not 200 <= status < 300:
            self.non2xx += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1
        if self.closed_loop_until is not None:
            done = self.limit is not None and len(self.latencies) >= self.limit
            if now < self.closed_loop_until and not done:
                self.outstanding += 1
                conn.send(now)
            return
        if self.backlog:
            conn.send(self.backlog.popleft())
        else:
            self.idle.append(conn)

    def lost(self, conn: Conn) -> None:
        self.opened -= 1
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.started is not None:
            self.errors += 1
            self.outstanding -= 1

    def dispatch(self, due: float) -> None:
        self.outstanding += 1
        if self.idle:
            self.idle.pop().send(due)
        elif self.opened < self.max_conns:
            self.opened += 1
            self.loop.create_task(self._open_and_send(due))
        else:
            self.backlog.append(due)

    async def _open_and_send(self, due: float) -> None:
        try:
            conn = await self.connect()
        except OSError:
            self.opened -= 1
            self.outstanding -= 1
            self.errors += 1
            return
        conn.send(due)

    async def settle(self, wait: float) -> None:
        deadline = self.loop.time() + wait
        while self.outstanding > 0 and self.loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        self.errors += max(0, self.outstanding)  # never answered: counted as errors


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies) or [float("nan")]

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {"p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "max_ms": at(1.0)}


async def open_loop(
    host: str, port: int, request: bytes, rate: float, seconds: float, max_conns: int
) -> dict[str, Any]:
    gen = Generator(host, port, request, max_conns)
    for _ in range(min(8, max_conns)):  # a few warm connections
        gen.idle.append(await gen.connect())
        gen.opened += 1
    total = max(1, int(rate * seconds))
    lags: list[float] = []
    t0 = CLOCK() + 0.01
    i = 0
    while i < total:
        now = CLOCK()
        while i < total and (due := t0 + i / rate) <= now:
            lags.append(now - due)
            gen.dispatch(due)
            i += 1
        if i < total:  # asyncio's epoll loop sleeps at least 1 ms: no busy wait
            await asyncio.sleep(max(0.0, t0 + i / rate - CLOCK()))
    await gen.settle(10.0)
    took = CLOCK() - t0
    lags.sort()
    return {
        "mode": "open", "rate": rate, "sent": total, "answered": len(gen.latencies),
        "non2xx": gen.non2xx, "statuses": gen.statuses, "errors": gen.errors,
        "conns": gen.opened,
        "achieved_rps": round(len(gen.latencies) / took, 1),
        "send_lag_p99_ms": round(lags[int(0.99 * (len(lags) - 1))] * 1000, 3),
        **percentiles(gen.latencies),
    }  # fmt: skip


async def closed_loop(
    host: str, port: int, request: bytes, conns: int, seconds: float, limit: int | None
) -> dict[str, Any]:
    gen = Generator(host, port, request, conns)
    opened = [await gen.connect() for _ in range(conns)]
    gen.opened = conns
    t0 = CLOCK()
    gen.closed_loop_until = t0 + seconds
    gen.limit = limit
    for conn in opened:
        gen.outstanding += 1
        conn.send(CLOCK())
    while CLOCK() < gen.closed_loop_until and gen.outstanding > 0:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    took = CLOCK() - t0
    await gen.settle(10.0)
    for conn in opened:
        if conn.transport is not None:
            conn.transport.close()
    return {
        "mode": "closed", "conns": conns, "requests": len(gen.latencies), "seconds": took,
        "rps": round(len(gen.latencies) / took, 1), "non2xx": gen.non2xx, "errors": gen.errors,
        **percentiles(gen.latencies),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("open", "closed"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--request-file", required=True, help="the raw request bytes")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=100.0, help="open: requests per second")
    parser.add_argument("--max-conns", type=int, default=256, help="open: connections at most")
    parser.add_argument("--conns", type=int, default=32, help="closed: connections")
    parser.add_argument("--requests", type=int, help="closed: stop after this many answers")
    args = parser.parse_args(argv)
    request = Path(args.request_file).read_bytes()
    if args.mode == "open":
        coro = open_loop(args.host, args.port, request, args.rate, args.seconds, args.max_conns)
    else:
        seconds = args.seconds if args.requests is None else 1e9
        coro = closed_loop(args.host, args.port, request, args.conns, seconds, args.requests)
    print(json.dumps(asyncio.run(coro)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
