"""A loopback port that refuses connections until it starts forwarding to a target.

Before :meth:`LateListener.open` nothing listens on the port, so connecting is
refused (the request never left the gateway); after it, every connection is
piped to the target. Runs an asyncio loop in a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.harness import free_port


class LateListener:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.port = free_port()
        self.target = (target_host, target_port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: asyncio.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def open(self) -> None:
        async def start() -> asyncio.Server:
            return await asyncio.start_server(self._serve, "127.0.0.1", self.port)

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)

    def open_after(self, seconds: float) -> None:
        self.loop.call_soon_threadsafe(self.loop.call_later, seconds, self._open_now)

    def _open_now(self) -> None:
        async def start() -> None:
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

        self.loop.create_task(start())

    def close(self) -> None:
        async def stop() -> None:
            if self.server is not None:
                self.server.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()  # and its self-pipe: an unclosed loop leaks two sockets
