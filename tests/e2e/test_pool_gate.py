"""The pool's slots (server/client.py ``PoolGate``): every kind of call gives its
slot back, so a pool of one keeps serving after each of them.

Before the gate, aiohttp's own queue was watched with trace hooks; the gate
replaced them, and a slot that was not given back would turn every later call
into a 503 ``connection pool exhausted``: the last call here would fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.server.app import create_app
from gateway.server.client import PoolGate
from gateway.server.keys import STATE
from tests.conftest import make_config
from tests.harness import Standins, write_config


async def test_every_kind_of_call_gives_its_pool_slot_back(
    aiohttp_client: Any, fresh_standins: Standins, tmp_path: Path
) -> None:
    path = write_config(
        tmp_path,
        lambda d: d["upstreams"]["bizzstream"].update(
            pool_size=1, timeouts={"pool": "200ms", "head": "500ms", "idle": "300ms"}
        ),
    )
    client = await aiohttp_client(create_app(make_config(fresh_standins, path)))
    gate = client.server.app[STATE].upstreams["bizzstream"].client.gate
    base = "/bizzstream/__fault"
    statuses = []
    for method, target in [
        ("GET", f"{base}/echo"),  # a small body, read with its head
        ("HEAD", f"{base}/echo"),
        ("POST", f"{base}/echo"),  # a streamed request body
        ("GET", f"{base}/text/404"),  # an error, parsed
        ("GET", f"{base}/gzipbomb/500"),  # an error body refused mid-read
        ("GET", f"{base}/drop"),  # the upstream closes the connection
        ("GET", f"{base}/sleep?seconds=2"),  # the head timeout
        ("GET", f"{base}/trickle?chunks=2&every=1&size=10"),  # the idle timeout, streaming
        ("GET", f"{base}/big"),  # a long stream, read whole
    ]:
        resp = await client.request(method, target, data=b"x" * 10 if method == "POST" else None)
        try:
            await resp.read()
        except aiohttp.ClientPayloadError:  # the idle timeout broke the stream off
            assert "trickle" in target
        statuses.append(resp.status)
        await asyncio.sleep(0.05)  # the stand-in's side of a broken call settles
        assert gate.in_use == 0, (method, target, resp.status)
    # the caller walks away in the middle of a stream
    resp = await client.get(f"{base}/big")
    assert resp.status == 200
    await resp.content.read(1000)
    resp.close()
    for _ in range(50):
        if gate.in_use == 0:
            break
        await asyncio.sleep(0.02)
    assert gate.in_use == 0
    assert statuses[:4] == [200, 200, 200, 404] and statuses[5:7] == [503, 504], statuses
    final = await client.get(f"{base}/echo")
    assert final.status == 200


async def test_a_slot_given_back_goes_to_the_first_waiter_and_a_timed_out_wait_leaves_none() -> (
    None
):
    gate = PoolGate(1)
    assert gate.try_take() and not gate.try_take()
    order: list[str] = []

    async def wait(name: str, seconds: float) -> None:
        async with asyncio.timeout(seconds):
            await gate.take()
        order.append(name)

    gone = asyncio.create_task(wait("gone", 0.05))  # gives up before any slot is free
    first = asyncio.create_task(wait("first", 5))
    await asyncio.sleep(0)
    second = asyncio.create_task(wait("second", 5))
    await asyncio.sleep(0.1)
    with pytest.raises(TimeoutError):
        await gone
    assert gate.in_use == 1 and not gate.try_take()  # a waiter is queued: no jumping it
    gate.release()
    await first
    gate.release()
    await second
    gate.release()
    assert order == ["first", "second"] and gate.in_use == 0 and gate.try_take()
    # a slot handed over just as its waiter is cancelled is passed on, not lost
    late = asyncio.create_task(gate.take())
    await asyncio.sleep(0)
    gate.release()  # hands the slot to `late`...
    late.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await late
    assert gate.in_use == 0


class _SlowError:
    """A raw upstream: a 500 whose JSON body stops after its first byte (and a 200
    for anything else). Every connection is closed when the test ends."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.writers: list[asyncio.StreamWriter] = []

    async def close(self) -> None:
        self.done.set()
        for writer in self.writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while not self.done.is_set():
                head = await reader.readuntil(b"\r\n\r\n")
                if b"slowerr" in head.split(b"\r\n", 1)[0]:
                    writer.write(b"HTTP/1.1 500 Oops\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: 100\r\n\r\n{")  # fmt: skip
                    await writer.drain()
                    await self.done.wait()  # stalls until the test ends
                    break
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
                )
                await writer.drain()
        writer.close()


async def test_a_caller_leaving_while_an_error_body_is_read_gives_the_slot_back(
    aiohttp_client: Any, fresh_standins: Standins, tmp_path: Path
) -> None:
    # Found by review: the error body's read was cancelled with the caller, the
    # reply was never closed, and its connection (with the only slot) was lost.
    upstream = _SlowError()
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        path = write_config(
            tmp_path,
            lambda d: d["upstreams"]["bizzstream"].update(
                base_url=f"http://127.0.0.1:{port}",
                pool_size=1,
                timeouts={"pool": "200ms", "head": "1s", "idle": "3s"},
                auth={
                    "token": "${BIZZSTREAM_TOKEN}",
                    "environment_id": "${BIZZSTREAM_ENVIRONMENT_ID}",
                },
            ),
        )
        client = await aiohttp_client(create_app(make_config(fresh_standins, path)))
        gate = client.server.app[STATE].upstreams["bizzstream"].client.gate
        task = asyncio.create_task(client.get("/bizzstream/slowerr"))
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for _ in range(50):
            if gate.in_use == 0:
                break
            await asyncio.sleep(0.02)
        assert gate.in_use == 0
        assert (await client.get("/bizzstream/ok")).status == 200
    finally:
        server.close()
        await upstream.close()
        await server.wait_closed()
