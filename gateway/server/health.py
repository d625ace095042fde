"""Reserved operational endpoints: ``/healthz``, ``/readyz``, ``/metrics`` (docs/contract.md §4)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio.cluster import RedisCluster

from gateway.core.reserved import HEALTHZ, METRICS, READYZ
from gateway.server.framing import expect_handler
from gateway.server.keys import CONFIG, STATE
from gateway.server.keys import METRICS as METRICS_KEY


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    checks: dict[str, str] = {"config": "ok"}
    ready = True
    if state.shutting_down:
        checks["shutdown"] = "in progress"
        ready = False
    if state.redis is not None:
        config = request.app[CONFIG]
        checks["redis_mode"] = config.redis.mode  # single | cluster | sentinel (docs/fleet.md)
        checks["sessions"] = "shared through Redis" if state.fleet else "per process"
        try:
            await asyncio.wait_for(state.redis.ping(), timeout=0.5)
            checks["redis"] = "ok"
            if isinstance(state.redis, RedisCluster):  # PING reached one node; the slots may not
                info = await asyncio.wait_for(state.redis.cluster_info(), timeout=0.5)
                if info.get("cluster_state") != "ok":
                    # still ready: the limiter falls back for keys on uncovered slots
                    checks["redis"] = f"degraded (cluster_state {info.get('cluster_state')})"
        except Exception as exc:  # any failure means not ready; the reason is reported
            checks["redis"] = f"unreachable ({type(exc).__name__})"
            ready = False
    else:
        checks["redis"] = "not configured (limits are per process)"
    if state.limiter_status is not None:
        checks["limiter"] = state.limiter_status()
    if state.workers_status is not None:  # server.workers > 1 (server/workers.py)
        workers_ready, checks["workers"] = state.workers_status()
        ready = ready and workers_ready
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _reserved(request: web.Request) -> web.Response:
    raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])


# Reserved paths (docs/contract.md §4, gateway/core/reserved.py): never proxied,
# whatever the method.
HANDLERS = {HEALTHZ.route: healthz, READYZ.route: readyz, METRICS.route: metrics}


def add_health_routes(app: web.Application) -> None:
    for path, handler in HANDLERS.items():
        resource = app.router.add_resource(path)
        resource.add_route("GET", handler, expect_handler=expect_handler)
        resource.add_route("*", _reserved, expect_handler=expect_handler)
