"""3-legged onboarding, for any upstream whose spec has one (docs/auth.md, "3-legged onboarding").

The upstream module describes its onboarding with pure request builders and
reply parsers (``spec.onboarding``, :mod:`gateway.upstreams.onboarding`;
BuzzStream's OAuth 1.0a in ``buzzstream_tokens.py``); these routes do the I/O:

- ``GET /oauth/<upstream>/start?user=<id>``: makes the upstream's first call if
  it has one (BuzzStream: a request token whose ``oauth_callback`` is
  ``<public_url>/oauth/buzzstream/callback``), remembers the onboarding for that
  user for 10 minutes under its one-time handle, and answers ``302`` to the
  upstream's approval page. Behind caller authentication when ``callers.tokens``
  is set: an internal app calls it and sends the user's browser to the
  ``Location``; the caller must be allowed to act for that user (else 403
  ``forbidden``). A user who already has a stored credential is refused (409
  ``conflict``) unless the call says ``&replace=true``; a replacement is logged
  (``oauth_token_replaced``, WARNING, with the caller's name) and counted
  (``gateway_oauth_token_replacements_total``).
- ``GET /oauth/<upstream>/callback?...`` (BuzzStream: ``oauth_token`` and
  ``oauth_verifier`` or ``verifier``): the browser, back from the upstream.
  Exchanges the code for the user's credential and stores it, encrypted
  (:mod:`gateway.server.tokenstore`). Guarded by the one-time handle, not by
  caller authentication (a browser redirect carries no caller token): whoever
  learns the approval URL can complete it with their own upstream account, a
  design limit (docs/auth.md, "3-legged onboarding"). The callback URL is the
  one the start named, kept in the pending record (a reload may change
  ``public_url`` meanwhile). Answers
  ``200 {"status": "connected", "upstream": <upstream>, "user": ...}``.

An upstream that is not configured, or has no onboarding, is a 404
``unknown_upstream`` problem.

The callback is also served alone by :func:`onboarding_app` on
``onboarding_listen`` (``GATEWAY_ONBOARDING_LISTEN``): in a sidecar the proxy
port stays on loopback, and only this listener, with nothing but the callbacks
and the problem pages on it, is exposed to browsers through a Service/Ingress.

The upstream calls onboarding makes are admitted by the same quotas as proxied
calls (:func:`gateway.server.admission.admit`), on the account the onboarding
names (BuzzStream: the consumer's, as for a 2-legged call): concurrent
onboardings are paced, never suspended by the upstream.

The paths are in the reserved table (``gateway/core/reserved.py``): no
upstream may be named ``oauth``. Errors are problems like everywhere else.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.core.headers import GATEWAY_USER
from gateway.core.messages import UpstreamReply
from gateway.core.oauth1 import new_nonce
from gateway.core.reserved import ONBOARDING_CALLBACK, ONBOARDING_START, onboarding_path
from gateway.errors import Conflict, InvalidRequest, UnknownUpstream, UpstreamUnavailable
from gateway.logs import get_logger
from gateway.server.admission import admit
from gateway.server.caller_auth import require_user
from gateway.server.framing import expect_handler
from gateway.server.keys import CONFIG, MASKER, METRICS, STATE, config_of
from gateway.server.middlewares import ENVELOPE, gateway_app
from gateway.server.problem_pages import add_problem_routes
from gateway.server.requestinfo import INFO
from gateway.server.state import Upstream
from gateway.server.tokenstore import create_token_store
from gateway.upstreams import REGISTRY
from gateway.upstreams.base import KeyValueStore
from gateway.upstreams.onboarding import (
    Fresh,
    Onboarding,
    Pending,
    Site,
    TokenCall,
    has_user,
    save_pending,
    save_user,
    take_pending,
)

log = get_logger("gateway.oauth")


def _parts(request: web.Request) -> tuple[Upstream, Onboarding, KeyValueStore]:
    if request.method != "GET":
        raise web.HTTPMethodNotAllowed(request.method, ["GET"])
    name = request.match_info["upstream"]
    if name in REGISTRY:  # a bounded set: the upstream is a metrics label
        request[INFO].upstream = name
    state = request.app[STATE]
    upstream = state.upstreams.get(name)  # read once: a reload swaps the whole object
    if upstream is None:
        raise UnknownUpstream(f"no upstream named {name[:64]!r} is configured")
    onboarding = upstream.spec.onboarding
    if onboarding is None:
        raise UnknownUpstream(
            f"the upstream {name!r} has no 3-legged onboarding: its users do not connect "
            "their own accounts",
            upstream=name,
        )
    if state.token_store is None:
        raise UpstreamUnavailable("the token store is not ready", upstream=name)
    return upstream, onboarding, state.token_store


def _replace_flag(request: web.Request, name: str) -> bool:
    value = request.query.get("replace", "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidRequest("replace must be true or false", upstream=name)
    return value in ("true", "1")


async def _refuse_a_silent_replacement(
    upstream: Upstream, onboarding: Onboarding, store: KeyValueStore, user: str, replace: bool
) -> bool:
    """Whether ``user`` has a stored credential (which only ``replace=true`` may
    replace); a user whose credentials are in the config cannot be onboarded
    (the config wins)."""
    pinned = onboarding.pinned(upstream.config.auth, user)
    if pinned is not None:
        raise Conflict(
            f"the user {user!r} has {onboarding.title} credentials in the config "
            f"({pinned}), which win over an onboarded token",
            upstream=upstream.name,
        )
    exists = await has_user(store, onboarding.store_prefix, user)
    if exists and not replace:
        raise Conflict(
            f"the user {user!r} already has a {onboarding.title} token; onboard again with "
            "replace=true to replace it",
            upstream=upstream.name,
        )
    return exists


def _site(request: web.Request, upstream: Upstream, callback: str = "") -> Site:
    """The upstream's site and the callback URL: ``callback`` (the one an
    onboarding's start named, kept in its pending record), else the current
    ``<public_url>/oauth/<upstream>/callback``."""
    if not callback:
        path = onboarding_path(ONBOARDING_CALLBACK, upstream.name)
        callback = config_of(request.app).public_url + path
    return Site(upstream.config.host_url, upstream.config.base_path, callback)


def _fresh() -> Fresh:
    return Fresh(new_nonce(), int(time.time()))


async def _exchange(
    request: web.Request, upstream: Upstream, call: TokenCall, user: str
) -> UpstreamReply:
    """One upstream call of the onboarding: admitted by the quotas, then signed and sent."""
    await admit(request, upstream.config, call.method, call.subpath, call.account, user)
    return await upstream.client.send(call.build(_fresh()))


async def start(request: web.Request) -> web.StreamResponse:
    upstream, onboarding, store = _parts(request)
    name, settings = upstream.name, upstream.config.auth
    user = request.query.get("user", "")
    if not GATEWAY_USER.match(user):
        raise InvalidRequest("user must be 1-128 printable characters", upstream=name)
    caller = require_user(request, user)
    replace = _replace_flag(request, name)
    await _refuse_a_silent_replacement(upstream, onboarding, store, user, replace)
    site = _site(request, upstream)
    first = onboarding.first_call(settings, site)
    reply = None if first is None else await _exchange(request, upstream, first, user)
    grant = onboarding.approval(settings, site, reply, _fresh())
    masker = request.app[MASKER]
    masker.remember(grant.secret or None)  # masked in logs and error bodies
    caller_name = caller.name if caller is not None else ""
    pending = Pending(user, grant.secret, replace, caller_name, site.callback_url)
    await save_pending(store, onboarding.store_prefix, grant.handle, pending)
    log.info("oauth_started", upstream=name, user=user, replace=replace, caller=caller_name or None)
    return web.Response(status=302, headers={"Location": grant.location})


async def callback(request: web.Request) -> web.StreamResponse:
    upstream, onboarding, store = _parts(request)
    name = upstream.name
    back = onboarding.returned(request.query)
    masker = request.app[MASKER]
    pending = await take_pending(store, onboarding.store_prefix, back.handle, masker)
    if pending is None:
        raise InvalidRequest(
            "unknown, used or expired request token: start the onboarding again", upstream=name
        )
    user = pending.user
    # Checked again: another onboarding may have stored a token since this one started.
    replaced = await _refuse_a_silent_replacement(
        upstream, onboarding, store, user, pending.replace
    )
    # The start's callback URL: OAuth 2's code exchange must repeat the redirect_uri the
    # approval named, even when a reload changed public_url since.
    site = _site(request, upstream, pending.callback_url)
    call = onboarding.token_call(upstream.config.auth, site, pending, back)
    reply = await _exchange(request, upstream, call, user)
    credential = onboarding.credential(reply)
    masker.remember(list(credential.values())[-1] if credential else None)  # its secret
    await save_user(store, onboarding.store_prefix, user, credential)
    if replaced:
        request.app[METRICS].oauth_replacements.labels(name).inc()
        log.warning("oauth_token_replaced", upstream=name, user=user, caller=pending.caller or None)
    log.info("oauth_connected", upstream=name, user=user)
    return web.json_response({"status": "connected", "upstream": name, "user": user})


async def _token_store(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    assert state.store is not None, "the shared store is created before the token store"
    state.token_store = create_token_store(state.store, app[CONFIG].token_store_key)
    for name in app[CONFIG].upstreams:
        if REGISTRY[name].onboarding is not None:
            app[METRICS].oauth_replacements.labels(name)  # the series exists at 0
    yield


def onboarding_app(app: web.Application) -> web.Application:
    """The browser-facing listener: the callbacks and ``/problems`` alone, sharing
    ``app``'s state (token store, upstream clients). ``start`` is not here: it is
    the internal app's to call, on the proxy port, behind caller authentication."""
    browser = gateway_app(ENVELOPE)
    browser[CONFIG] = app[CONFIG]
    browser[METRICS] = app[METRICS]
    browser[STATE] = app[STATE]
    browser[MASKER] = app[MASKER]
    browser.router.add_route("*", ONBOARDING_CALLBACK.route, callback)
    add_problem_routes(browser)
    return browser


def add_oauth_routes(app: web.Application) -> None:
    """Register before the catch-all proxy route; needs the shared store's cleanup ctx first."""
    app.cleanup_ctx.append(_token_store)
    for route, handler in ((ONBOARDING_START, start), (ONBOARDING_CALLBACK, callback)):
        app.router.add_route("*", route.route, handler, expect_handler=expect_handler)
