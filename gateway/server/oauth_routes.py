"""BuzzStream 3-legged onboarding (docs/upstreams.md § buzzstream; RFC 5849 §2).

- ``GET /oauth/buzzstream/start?user=<id>``: gets a request token (its
  ``oauth_callback`` is ``<public_url>/oauth/buzzstream/callback``), remembers
  it for that user for 10 minutes, and answers ``302`` to BuzzStream's approval
  page. Behind caller authentication when ``callers.tokens`` is set: an
  internal app calls it and sends the user's browser to the ``Location``.
- ``GET /oauth/buzzstream/callback?oauth_token=..&oauth_verifier=..`` (or
  ``verifier``): the browser, back from BuzzStream. Exchanges the verifier for
  the access token and stores the pair for the user, encrypted
  (:mod:`gateway.server.tokenstore`). Guarded by the one-time request token,
  not by caller authentication (a browser redirect carries no caller token).
  Answers ``200 {"status": "connected", "upstream": "buzzstream", "user": ...}``.

The callback is also served alone by :func:`onboarding_app` on
``onboarding_listen`` (``GATEWAY_ONBOARDING_LISTEN``): in a sidecar the proxy
port stays on loopback, and only this listener, with nothing but the callback
and the problem pages on it, is exposed to browsers through a Service/Ingress.

Calls with ``X-Gateway-User: <id>`` are then signed with that user's token.
``/oauth/...`` is therefore a reserved path: no upstream may be named ``oauth``.
Errors are problems like everywhere else.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.core.oauth1 import new_nonce
from gateway.errors import InvalidRequest, UnknownUpstream, UpstreamUnavailable
from gateway.logs import get_logger
from gateway.server.framing import expect_handler
from gateway.server.keys import CONFIG, METRICS, STATE, config_of
from gateway.server.middlewares import add_gateway_headers, problem_middleware
from gateway.server.problem_pages import add_problem_routes
from gateway.server.requestinfo import INFO
from gateway.server.state import GatewayState
from gateway.server.tokenstore import create_token_store
from gateway.upstreams.base import KeyValueStore
from gateway.upstreams.buzzstream import NAME, OAuth1Auth
from gateway.upstreams.buzzstream_tokens import (
    access_token_request,
    authorize_location,
    parse_token_reply,
    request_token_request,
    save_pending,
    save_user_token,
    take_pending,
)

START = "/oauth/buzzstream/start"
CALLBACK = "/oauth/buzzstream/callback"
_USER = re.compile(r"^[\x21-\x7e]{1,128}$")  # the same rule as X-Gateway-User
_TOKEN = re.compile(r"^[\x21-\x7e]{1,512}$")
log = get_logger("gateway.oauth")


def _parts(request: web.Request) -> tuple[GatewayState, OAuth1Auth, KeyValueStore]:
    if request.method != "GET":
        raise web.HTTPMethodNotAllowed(request.method, ["GET"])
    request[INFO].upstream = NAME
    state = request.app[STATE]
    auth = state.auths.get(NAME)
    if NAME not in config_of(request.app).upstreams or not isinstance(auth, OAuth1Auth):
        raise UnknownUpstream(f"no upstream named {NAME!r} is configured")
    if state.token_store is None:
        raise UpstreamUnavailable("the token store is not ready", upstream=NAME)
    return state, auth, state.token_store


async def start(request: web.Request) -> web.StreamResponse:
    state, auth, store = _parts(request)
    user = request.query.get("user", "")
    if not _USER.match(user):
        raise InvalidRequest("user must be 1-128 printable characters", upstream=NAME)
    config = config_of(request.app)
    cfg = config.upstreams[NAME]
    outbound = request_token_request(
        auth.consumer,
        cfg.host_url,
        cfg.base_path + auth.settings.request_token_path,
        config.public_url + CALLBACK,
        nonce=new_nonce(),
        timestamp=int(time.time()),
    )
    reply = await state.clients[NAME].send(outbound)
    token, secret = parse_token_reply(reply, "request token", NAME)
    await save_pending(store, token, user, secret)
    log.info("oauth_started", upstream=NAME, user=user)
    location = authorize_location(cfg.base_url, auth.settings.authorize_url, token)
    return web.Response(status=302, headers={"Location": location})


async def callback(request: web.Request) -> web.StreamResponse:
    state, auth, store = _parts(request)
    token = request.query.get("oauth_token", "")
    verifier = request.query.get("oauth_verifier") or request.query.get("verifier") or ""
    if not _TOKEN.match(token) or not _TOKEN.match(verifier):
        raise InvalidRequest("oauth_token and oauth_verifier are required", upstream=NAME)
    pending = await take_pending(store, token)
    if pending is None:
        raise InvalidRequest(
            "unknown, used or expired request token: start the onboarding again", upstream=NAME
        )
    user, secret = pending
    cfg = config_of(request.app).upstreams[NAME]
    outbound = access_token_request(
        auth.consumer,
        cfg.host_url,
        cfg.base_path + auth.settings.access_token_path,
        token,
        secret,
        verifier,
        nonce=new_nonce(),
        timestamp=int(time.time()),
    )
    reply = await state.clients[NAME].send(outbound)
    access, access_secret = parse_token_reply(reply, "access token", NAME)
    await save_user_token(store, user, access, access_secret)
    log.info("oauth_connected", upstream=NAME, user=user)
    return web.json_response({"status": "connected", "upstream": NAME, "user": user})


async def _token_store(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    assert state.store is not None, "the shared store is created before the token store"
    state.token_store = create_token_store(state.store, app[CONFIG].token_store_key)
    yield


def onboarding_app(app: web.Application) -> web.Application:
    """The browser-facing listener: the callback and ``/problems`` alone, sharing
    ``app``'s state (token store, upstream clients). ``start`` is not here: it is
    the internal app's to call, on the proxy port, behind caller authentication."""
    browser = web.Application(middlewares=[problem_middleware])
    browser[CONFIG] = app[CONFIG]
    browser[METRICS] = app[METRICS]
    browser[STATE] = app[STATE]
    browser.on_response_prepare.append(add_gateway_headers)
    browser.router.add_route("*", CALLBACK, callback)
    add_problem_routes(browser)
    return browser


def add_oauth_routes(app: web.Application) -> None:
    """Register before the catch-all proxy route; needs the shared store's cleanup ctx first."""
    app.cleanup_ctx.append(_token_store)
    app.router.add_route("*", START, start, expect_handler=expect_handler)
    app.router.add_route("*", CALLBACK, callback, expect_handler=expect_handler)
