"""Running ``gateway/lua/gcra.lua`` in Redis: EVALSHA, NOSCRIPT reload, batching.

- Each round trip has ``redis.timeout`` of Redis's time, not of event-loop lag
  (:func:`~gateway.server.redis_time.within`).

- :data:`SCRIPT` (package data) is read once and run with ``EVALSHA``; a
  ``NOSCRIPT`` answer (a restarted Redis, ``SCRIPT FLUSH``) loads it again and
  re-runs the calls that missed, so it survives either.
- Calls that arrive while a round trip is in flight share the next one: they
  go out together as one pipeline (``batch``); on Redis Cluster, one pipeline
  per node (every key of one call shares a hash tag, so one call is one node).
- Here (and in ``RedisLimiter``'s probe) the limiter's redis exceptions are
  caught and translated into :class:`RedisUnavailable`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from importlib.resources import files
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from gateway.server.redis_client import REDIS_ERRORS, RedisClient, RedisUnavailable
from gateway.server.redis_time import LagClock, within

SCRIPT = files("gateway").joinpath("lua/gcra.lua").read_text()

Pending = tuple[Sequence[str], Sequence[str | int], "asyncio.Future[Any]"]


class ScriptRunner:
    """Runs :data:`SCRIPT` by ``EVALSHA``, batching concurrent calls when asked."""

    def __init__(
        self,
        redis: RedisClient,
        timeout: float,
        batch: bool = True,
        on_failure: Callable[[RedisUnavailable], None] | None = None,
        clock: LagClock | None = None,
    ) -> None:
        self.sha = hashlib.sha1(SCRIPT.encode()).hexdigest()
        self._redis = redis
        self._timeout = timeout
        self._batch = batch
        self._on_failure = on_failure  # called once per failed round trip
        self._clock = clock  # the loop's lag, not counted against Redis
        self._pending: list[Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self.round_trips = 0  # for the benchmark

    def submit(self, keys: Sequence[str], args: Sequence[str | int]) -> asyncio.Future[Any]:
        """A future of the script's answer, or of :class:`RedisUnavailable`."""
        loop = asyncio.get_running_loop()
        if not self._batch:
            return loop.create_task(self._one(keys, args))
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((keys, args, future))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return future

    async def load(self) -> None:
        await within(self._redis.script_load(SCRIPT), self._timeout, self._clock)

    async def _one(self, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        (result,) = await self._run([(keys, args)])
        if isinstance(result, Exception):
            raise result
        return result

    async def _flush(self) -> None:
        """Send what is pending, one pipeline per round trip. When a round
        trip fails, the calls that queued behind it fail at once too (Redis
        is not answering; the breaker is open): none waits for a send of its
        own, and nothing more is sent."""
        batch: list[Pending] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._run([(keys, args) for keys, args, _ in batch])
                except Exception as exc:
                    failure = (
                        exc
                        if isinstance(exc, RedisUnavailable)  # a bug must not strand callers
                        else self._failed(RedisUnavailable(type(exc).__name__))
                    )
                    batch += self._pending
                    self._pending = []
                    results = [failure] * len(batch)
                _settle(batch, results)
                batch = []
        finally:
            self._flusher = None
            if batch:  # cancelled mid-flight (shutdown): fail what was in it
                _settle(batch, [RedisUnavailable("CancelledError")] * len(batch))

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        pending, self._pending = self._pending, []
        _settle(pending, [RedisUnavailable("closed")] * len(pending))

    def _failed(self, exc: RedisUnavailable) -> RedisUnavailable:
        if self._on_failure is not None:
            self._on_failure(exc)
        return exc

    async def _run(self, calls: list[tuple[Sequence[str], Sequence[str | int]]]) -> list[Any]:
        """One round trip (plus a ``SCRIPT LOAD`` and re-send on ``NOSCRIPT``)
        within ``timeout``; a failure is reported to ``on_failure`` once."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            results = await within(self._round_trip(calls), self._timeout, self._clock)
        except REDIS_ERRORS as exc:
            took = round((loop.time() - started) * 1000)
            raise self._failed(RedisUnavailable(f"{type(exc).__name__} after {took} ms")) from exc
        out = [
            RedisUnavailable(type(r).__name__) if isinstance(r, Exception) else r for r in results
        ]
        errors = [r for r in out if isinstance(r, RedisUnavailable)]
        if errors:
            self._failed(errors[0])
        return out

    async def _round_trip(
        self, calls: list[tuple[Sequence[str], Sequence[str | int]]]
    ) -> list[Any]:
        results = await self._send(calls)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            await self._redis.script_load(SCRIPT)
            again = await self._send([calls[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return results

    async def _send(self, calls: list[tuple[Sequence[str], Sequence[str | int]]]) -> list[Any]:
        self.round_trips += 1
        if len(calls) == 1:
            keys, args = calls[0]
            try:
                return [await self._redis.evalsha(self.sha, len(keys), *keys, *args)]
            except ResponseError as exc:  # NOSCRIPT, BUSY, OOM...: judged per call
                return [exc]
        # On Redis Cluster the pipeline groups the calls per node (one round trip
        # each, in parallel); redis-py blocks its pipelined evalsha() helper
        # there, not the command itself.
        pipe = self._redis.pipeline(transaction=False)
        for keys, args in calls:
            pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


def _settle(batch: list[Pending], results: list[Any]) -> None:
    for (_, _, future), result in zip(batch, results, strict=True):
        if future.done():
            continue  # its caller gave up (the limiter gives back what it got)
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)
