"""What a stand-in saw, exposed to tests over HTTP.

Every stand-in app owns one :class:`Recorder` under ``app[RECORDER]`` and
mounts :func:`add_inspection_routes`, which serves:

- ``GET  /__standin/requests``  every recorded request, oldest first
- ``GET  /__standin/stats``     counters (auth failures, logins, suspensions...)
- ``POST /__standin/reset``     forget requests and counters
- ``POST /__standin/settings``  merge a JSON object into ``app[SETTINGS]``
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Seen:
    """One request as the stand-in received it."""

    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: str
    arrived: float
    auth_ok: bool = True
    auth_error: str | None = None
    principal: str | None = None  # who the stand-in thinks made the call
    answered: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Recorder:
    def __init__(self) -> None:
        # The fault switch (POST /__standin/outage): every recorded request fails
        # this way until healed. {"status": 503} answers that status (text/plain;
        # "retry_after": S adds that Retry-After header);
        # {"mode": "close"} drops the connection without a reply. {} heals.
        self.outage: dict[str, Any] | None = None
        self.seen: list[Seen] = []
        self.stats: Counter[str] = Counter()

    def record(self, request: web.Request, body: bytes) -> Seen:
        item = Seen(
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers={k: v for k, v in request.headers.items()},
            body=body.decode("utf-8", "replace"),
            arrived=time.time(),
        )
        self.seen.append(item)
        self.stats["requests"] += 1
        return item

    def count(self, name: str, n: int = 1) -> None:
        self.stats[name] += n

    def reset(self) -> None:
        self.seen.clear()
        self.stats.clear()
        self.outage = None


RECORDER = web.AppKey("recorder", Recorder)
SETTINGS = web.AppKey("settings", dict)


async def _requests(request: web.Request) -> web.Response:
    return web.json_response([asdict(s) for s in request.app[RECORDER].seen])


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(dict(request.app[RECORDER].stats))


async def _reset(request: web.Request) -> web.Response:
    request.app[RECORDER].reset()
    return web.json_response({"ok": True})


async def _settings(request: web.Request) -> web.Response:
    if request.can_read_body:
        update = await request.json()
        request.app[SETTINGS].update(update)
    return web.json_response(request.app[SETTINGS])


async def _outage(request: web.Request) -> web.Response:
    update = await request.json() if request.can_read_body else {}
    if not isinstance(update, dict) or update.keys() - {"status", "mode", "retry_after"}:
        raise web.HTTPBadRequest(
            text='expected {"status": N[, "retry_after": S]} or {"mode": "close"} or {}'
        )
    request.app[RECORDER].outage = update or None
    return web.json_response({"outage": update or None})


def add_inspection_routes(app: web.Application, settings: dict[str, Any]) -> None:
    app[RECORDER] = Recorder()
    app[SETTINGS] = settings
    app.router.add_get("/__standin/requests", _requests)
    app.router.add_get("/__standin/stats", _stats)
    app.router.add_post("/__standin/reset", _reset)
    app.router.add_post("/__standin/settings", _settings)
    app.router.add_post("/__standin/outage", _outage)
