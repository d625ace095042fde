"""BuzzStream 3-legged onboarding (docs/upstreams.md § buzzstream; RFC 5849 §2).

- ``GET /oauth/buzzstream/start?user=<id>``: gets a request token (its
  ``oauth_callback`` is ``<public_url>/oauth/buzzstream/callback``), remembers
  it for that user for 10 minutes, and answers ``302`` to BuzzStream's approval
  page. Behind caller authentication when ``callers.tokens`` is set: an
  internal app calls it and sends the user's browser to the ``Location``; the
  caller must be allowed to act for that user (else 403 ``forbidden``). A user
  who already has a stored token is refused (409 ``conflict``) unless the call
  says ``&replace=true``; a replacement is logged (``oauth_token_replaced``,
  WARNING, with the caller's name) and counted
  (``gateway_oauth_token_replacements_total``).
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

Both BuzzStream calls (``requestToken``, ``accessToken``) are admitted by the
same quotas as proxied calls (:func:`gateway.server.admission.admit`), on the
consumer's account (they are signed by the consumer, as a 2-legged call is):
concurrent onboardings are paced, never suspended by BuzzStream.

Calls with ``X-Gateway-User: <id>`` are then signed with that user's token.
``/oauth/...`` is therefore a reserved path: no upstream may be named ``oauth``.
Errors are problems like everywhere else.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.core.headers import GATEWAY_USER
from gateway.core.oauth1 import new_nonce
from gateway.errors import Conflict, InvalidRequest, UnknownUpstream, UpstreamUnavailable
from gateway.logs import get_logger
from gateway.server.admission import admit
from gateway.server.caller_auth import require_user
from gateway.server.framing import expect_handler
from gateway.server.keys import CONFIG, METRICS, STATE, config_of
from gateway.server.middlewares import add_gateway_headers, problem_middleware
from gateway.server.problem_pages import add_problem_routes
from gateway.server.requestinfo import INFO
from gateway.server.state import GatewayState
from gateway.server.tokenstore import create_token_store
from gateway.upstreams.base import CallContext, KeyValueStore
from gateway.upstreams.buzzstream import NAME, OAuth1Auth
from gateway.upstreams.buzzstream_tokens import (
    access_token_request,
    authorize_location,
    load_user_token,
    parse_token_reply,
    request_token_request,
    save_pending,
    save_user_token,
    take_pending,
)

START = "/oauth/buzzstream/start"
CALLBACK = "/oauth/buzzstream/callback"
_TOKEN = re.compile(r"^[\x21-\x7e]{1,512}$")
log = get_logger("gateway.oauth")


def _parts(request: web.Request) -> tuple[GatewayState, OAuth1Auth, KeyValueStore]:
    if request.method != "GET":
        raise web.HTTPMethodNotAllowed(request.method, ["GET"])
    request[INFO].upstream = NAME
    state = request.app[STATE]
    upstream = state.upstreams.get(NAME)
    auth = None if upstream is None else upstream.auth
    if NAME not in config_of(request.app).upstreams or not isinstance(auth, OAuth1Auth):
        raise UnknownUpstream(f"no upstream named {NAME!r} is configured")
    if state.token_store is None:
        raise UpstreamUnavailable("the token store is not ready", upstream=NAME)
    return state, auth, state.token_store


def _replace_flag(request: web.Request) -> bool:
    value = request.query.get("replace", "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidRequest("replace must be true or false", upstream=NAME)
    return value in ("true", "1")


async def _refuse_a_silent_replacement(
    auth: OAuth1Auth, store: KeyValueStore, user: str, replace: bool
) -> bool:
    """Whether ``user`` has a stored token (which only ``replace=true`` may replace);
    a user whose token is in the config cannot be onboarded (the config wins)."""
    if user in auth.settings.users:
        raise Conflict(
            f"the user {user!r} has BuzzStream credentials in the config "
            "(upstreams.buzzstream.auth.users), which win over an onboarded token",
            upstream=NAME,
        )
    exists = await load_user_token(store, user) is not None
    if exists and not replace:
        raise Conflict(
            f"the user {user!r} already has a BuzzStream token; onboard again with "
            "replace=true to replace it",
            upstream=NAME,
        )
    return exists


async def start(request: web.Request) -> web.StreamResponse:
    state, auth, store = _parts(request)
    user = request.query.get("user", "")
    if not GATEWAY_USER.match(user):
        raise InvalidRequest("user must be 1-128 printable characters", upstream=NAME)
    caller = require_user(request, user)
    replace = _replace_flag(request)
    await _refuse_a_silent_replacement(auth, store, user, replace)
    config = config_of(request.app)
    cfg = config.upstreams[NAME]
    path = auth.settings.request_token_path
    # The consumer signs alone, like a 2-legged call: the same quota account.
    await admit(request, cfg, "POST", path, auth.account(CallContext(NAME, None)), user)
    outbound = request_token_request(
        auth.consumer,
        cfg.host_url,
        cfg.base_path + path,
        config.public_url + CALLBACK,
        nonce=new_nonce(),
        timestamp=int(time.time()),
    )
    reply = await state.upstreams[NAME].client.send(outbound)
    token, secret = parse_token_reply(reply, "request token", NAME)
    name = caller.name if caller is not None else ""
    await save_pending(store, token, user, secret, replace=replace, caller=name)
    log.info("oauth_started", upstream=NAME, user=user, replace=replace, caller=name or None)
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
    user = pending.user
    # Checked again: another onboarding may have stored a token since this one started.
    replaced = await _refuse_a_silent_replacement(auth, store, user, pending.replace)
    cfg = config_of(request.app).upstreams[NAME]
    path = auth.settings.access_token_path
    await admit(request, cfg, "POST", path, auth.account(CallContext(NAME, None)), user)
    outbound = access_token_request(
        auth.consumer,
        cfg.host_url,
        cfg.base_path + path,
        token,
        pending.secret,
        verifier,
        nonce=new_nonce(),
        timestamp=int(time.time()),
    )
    reply = await state.upstreams[NAME].client.send(outbound)
    access, access_secret = parse_token_reply(reply, "access token", NAME)
    await save_user_token(store, user, access, access_secret)
    if replaced:
        request.app[METRICS].oauth_replacements.labels(NAME).inc()
        log.warning("oauth_token_replaced", upstream=NAME, user=user, caller=pending.caller or None)
    log.info("oauth_connected", upstream=NAME, user=user)
    return web.json_response({"status": "connected", "upstream": NAME, "user": user})


async def _token_store(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    assert state.store is not None, "the shared store is created before the token store"
    state.token_store = create_token_store(state.store, app[CONFIG].token_store_key)
    if NAME in app[CONFIG].upstreams:
        app[METRICS].oauth_replacements.labels(NAME)  # the series exists at 0
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
