"""The app factory. Every resource is created in a cleanup context, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web, web_response
from yarl import URL

from gateway.config import GatewayConfig
from gateway.config_callers import is_loopback
from gateway.config_reader import Secret
from gateway.core.secrets import SecretMasker
from gateway.logs import get_logger
from gateway.metrics import Metrics, create_metrics, prime_metrics
from gateway.redis_url import parse_redis_url
from gateway.server.auth_io import build_auth
from gateway.server.budget import ByteBudget
from gateway.server.client import UpstreamClient, make_session
from gateway.server.framing import expect_handler
from gateway.server.health import add_health_routes
from gateway.server.keys import CONFIG, MASKER, METRICS, STATE
from gateway.server.limiter_redis import create_limiter
from gateway.server.middlewares import MIDDLEWARES, gateway_app
from gateway.server.oauth_routes import add_oauth_routes
from gateway.server.problem_pages import add_problem_routes
from gateway.server.proxy import handle_proxy
from gateway.server.redis_client import SESSION_TIMEOUT, connect
from gateway.server.redis_time import hard_timeout
from gateway.server.retry import UpstreamRetry
from gateway.server.shared_sessions import create_fleet
from gateway.server.state import GatewayState, Upstream
from gateway.server.stores import create_store
from gateway.server.upstream_circuit import UpstreamBreaker
from gateway.upstreams import REGISTRY

if TYPE_CHECKING:  # OpenTelemetry is imported only when tracing is on
    from gateway.server.tracing import Tracing

log = get_logger("gateway")

# aiohttp names itself and its version ("Python/3.11 aiohttp/3.x") in the Server
# header of every reply it writes, including the ones no app hook sees (a
# request line it cannot parse). Name the product only: a version helps nobody
# but someone looking for a known hole.
SERVER_NAME = "gateway"
web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]


def secret_values(config: GatewayConfig) -> list[str]:
    """Every configured secret, so the app's masker masks it wherever it appears."""
    found: list[str] = [caller.token.reveal() for caller in config.caller_tokens]
    if config.token_store_key is not None:
        found.append(config.token_store_key.reveal())
    if config.redis.url is not None:
        found.append(config.redis.url.reveal())
        url = config.redis.url.reveal()
        target = parse_redis_url(url)  # cluster and sentinel URLs list several hosts
        password = URL(url).password if target.mode == "single" else target.password
        if password:
            found.append(password)

    def walk(value: object) -> None:  # auth settings nest (providers, per-user credentials)
        if isinstance(value, Secret):
            found.append(value.reveal())
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif hasattr(value, "__dataclass_fields__"):
            for item in vars(value).values():
                walk(item)

    for upstream in config.upstreams.values():
        walk(upstream.auth)
    return found


async def _clients(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    for name, cfg in app[CONFIG].upstreams.items():
        traced = () if state.tracing is None else (state.tracing.trace_config(name),)
        client = UpstreamClient(cfg, make_session(cfg, traced), app[METRICS])
        spec = REGISTRY[name]
        auth = build_auth(app, cfg, spec, client)
        state.upstreams[name] = Upstream(name, cfg, spec, auth, client)
        if cfg.circuit is not None:
            state.breakers[name] = UpstreamBreaker(name, cfg.circuit, app[METRICS])
        if cfg.retry is not None:
            state.retries[name] = UpstreamRetry(name, cfg.retry, app[METRICS])
    yield
    for upstream in state.upstreams.values():
        await upstream.client.session.close()
    for session in state.retired_sessions:  # pools a reload replaced
        await session.close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    state = app[STATE]
    if config.redis.url is None:
        log.warning(
            "limits_in_memory", detail="REDIS_URL is unset: limits and state are per process"
        )
    else:
        # The limiter's own bound is redis.timeout of Redis's time (redis_time.py);
        # the client's socket timeout holds whatever the event loop's lag.
        state.redis = connect(config.redis, hard_timeout(config.redis.timeout))
    # The token store and the shared sessions read credentials: no fallback
    # answer exists for them, so they get a patient client of their own.
    sessions_redis = None
    if state.redis is not None:
        sessions_redis = connect(config.redis, SESSION_TIMEOUT)
    state.store = create_store(config, sessions_redis, app[METRICS])
    fleet = create_fleet(config, sessions_redis, app[METRICS])
    state.fleet = fleet
    yield
    if fleet is not None:
        await fleet.aclose()
    for client in (sessions_redis, state.redis):
        if client is not None:
            await client.aclose()


async def _limiter(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    config = app[CONFIG]
    limiter = create_limiter(config.redis, state.redis, app[METRICS], workers=config.server.workers)
    await limiter.start()
    state.limiter = limiter
    state.limiter_status = limiter.status
    yield
    await limiter.aclose()


async def _tracing(app: web.Application) -> AsyncIterator[None]:
    yield
    tracing = app[STATE].tracing
    if tracing is not None:
        await tracing.aclose()


def create_app(
    config: GatewayConfig,
    metrics: Metrics | None = None,
    tracing: Tracing | None = None,
    masker: SecretMasker | None = None,
) -> web.Application:
    """The gateway app; ``tracing`` (see ``tracing_env.load_tracing``) None means off.

    The app's known secrets are ``masker`` (``app[MASKER]``): a new one unless
    given (``gateway run`` gives the one its log pipeline holds). It learns the
    configured secrets here and is handed to the auths (``AuthIO.masker``), the
    problem renderer and, per request, the log processor (docs/architecture.md,
    "Secret masking").
    """
    masker = SecretMasker() if masker is None else masker
    masker.remember_configured(secret_values(config))
    if not config.caller_tokens and not is_loopback(config.listen_host):
        log.warning(
            "callers_unauthenticated",
            detail=f"the proxy listens on {config.listen_host}:{config.listen_port} without "
            "caller tokens (allow_unauthenticated_callers: true): anything that reaches it "
            "can call the upstreams with the gateway's credentials",
        )
    middlewares = MIDDLEWARES if tracing is None else (tracing.middleware, *MIDDLEWARES)
    app = gateway_app(middlewares, client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[MASKER] = masker
    app[METRICS] = metrics if metrics is not None else create_metrics()
    prime_metrics(
        app[METRICS],
        {n: [p.name for p in u.rate_limits] for n, u in config.upstreams.items()},
        ("redis",) if config.redis.url is not None else (),
    )
    app[STATE] = GatewayState(tracing=tracing, budget=ByteBudget(config.server.max_buffered_bytes))
    app.cleanup_ctx.append(_tracing)  # first in, last out: flushes spans of the last calls
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_limiter)
    app.cleanup_ctx.append(_clients)
    add_health_routes(app)
    add_oauth_routes(app)  # /oauth/... is reserved: before the catch-all proxy route
    add_problem_routes(app)  # /problems/... too
    # [\s\S]: a path with an encoded newline still reaches the proxy (and its 400).
    route = app.router.add_route
    route("*", r"/{upstream}/{tail:[\s\S]*}", handle_proxy, expect_handler=expect_handler)
    route("*", "/{upstream}", handle_proxy, expect_handler=expect_handler)
    return app
