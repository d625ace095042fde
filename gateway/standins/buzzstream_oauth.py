"""The auth edge of the BuzzStream stand-in (docs/upstreams.md § buzzstream, Auth).

- :func:`signed` wraps a resource handler: it verifies the OAuth 1.0a signature
  (:mod:`.oauth1_verify`), fills in the request's record, then applies the rate
  limit with :func:`admit` (excess calls are suspended, never refused).
- :func:`add_oauth_routes` mounts the 3-legged flow:
  ``POST /v1/requestToken``, ``GET /v1/oauth_verification`` (the approval page,
  approving at once for ``?user=NAME``) and ``POST /v1/accessToken``.

Refusals are ``{"message": ...}`` with 401, or 400 for a malformed header
(RFC 5849 §3.2). A handler may raise :class:`Reply` to answer at once.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web

from gateway.standins.faults import seen_of
from gateway.standins.oauth1_verify import (
    Caller,
    OAuthRefused,
    SignedRequest,
    TokenStore,
    authenticate,
    base_string_uri,
)
from gateway.standins.recorder import RECORDER, SETTINGS

DEFAULT_USER = "standin-user"

Handler = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]
RawHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class OAuthState:
    tokens: TokenStore = field(default_factory=TokenStore)
    admitted: dict[str, deque[float]] = field(default_factory=dict)  # per principal
    users: list[str] = field(default_factory=lambda: [DEFAULT_USER])  # user id = index + 1


OAUTH = web.AppKey("buzzstream_oauth", OAuthState)


def message(status: int, text: str) -> web.Response:
    return web.json_response({"message": text}, status=status)


class Reply(Exception):
    """Raised by a handler to answer at once with ``response``."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def refuse(status: int, text: str) -> Reply:
    return Reply(message(status, text))


async def admit(state: OAuthState, principal: str, rate: int, step: float) -> int:
    """Wait until fewer than ``rate`` calls of ``principal`` were answered within the
    last second, re-checking every ``step`` seconds; return the steps waited."""
    steps = 0
    while True:
        now = time.monotonic()
        recent = state.admitted.setdefault(principal, deque())
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        if len(recent) < max(1, rate):
            recent.append(now)  # it is answered now: the handlers never wait long
            return steps
        steps += 1
        await asyncio.sleep(step)


def _signed_request(request: web.Request, body: bytes) -> SignedRequest:
    url = request.url  # as aiohttp built it from the Host header
    return SignedRequest(
        method=request.method,
        uri=base_string_uri(url.scheme, url.host or "", url.port, request.rel_url.raw_path),
        raw_query=request.rel_url.raw_query_string,
        authorization=request.headers.get("Authorization", ""),
        content_type=request.headers.get("Content-Type", ""),
        body=body,
    )


def signed(kind: str, handler: Handler) -> RawHandler:
    """Verify (see :func:`.oauth1_verify.authenticate` for ``kind``), rate-limit, call."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorder, settings, state = request.app[RECORDER], request.app[SETTINGS], request.app[OAUTH]
        seen = seen_of(request)
        window = float(settings["timestamp_window"])
        try:
            caller = authenticate(
                _signed_request(request, body),
                settings["consumers"],
                window,
                state.tokens,
                kind,
                time.time(),
            )
        except OAuthRefused as exc:
            recorder.count("auth_failures")
            if exc.stat:
                recorder.count(exc.stat)
            seen.auth_ok, seen.auth_error = False, exc.message
            response = message(exc.status, exc.message)
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'OAuth realm="standin"'
            return response
        seen.principal = caller.principal
        rate, step = int(settings["rate_per_second"]), float(settings["suspend_step"])
        steps = await admit(state, caller.principal, rate, step)
        seen.extra["suspended_steps"] = steps
        if steps:
            recorder.count("suspensions")
        try:
            return await handler(request, caller)
        except Reply as reply:
            return reply.response

    return wrapped


def _form(values: dict[str, str]) -> web.Response:
    return web.Response(text=urlencode(values), content_type="application/x-www-form-urlencoded")


async def request_token(request: web.Request, caller: Caller) -> web.StreamResponse:
    """RFC 5849 §2.1: temporary credentials for the ``oauth_callback`` in the header."""
    callback = caller.params.get("oauth_callback")
    if not callback:
        raise refuse(400, "Missing OAuth parameter: oauth_callback")
    token = request.app[OAUTH].tokens.new_request_token(caller.consumer, callback)
    return _form(
        {"oauth_token": token.token, "oauth_token_secret": token.secret}
        | {"oauth_callback_confirmed": "true"}
    )


async def authorize_page(request: web.Request) -> web.StreamResponse:
    """RFC 5849 §2.2: the approval page, approving at once for ``?user=NAME``.

    Redirects to the callback (its own query kept) with ``oauth_token``,
    ``verifier`` and ``oauth_verifier``; an ``oob`` callback gets them as text.
    """
    seen = seen_of(request)
    user = request.query.get("user") or DEFAULT_USER
    seen.principal = user
    token = request.app[OAUTH].tokens.request_tokens.get(request.query.get("oauth_token", ""))
    if token is None:
        return message(400, "Unknown request token")
    token.user, token.verifier = user, secrets.token_hex(8)
    extra = urlencode(
        {"oauth_token": token.token, "verifier": token.verifier, "oauth_verifier": token.verifier}
    )
    if token.callback == "oob":
        return web.Response(text=extra, content_type="text/plain")
    base, hash_mark, fragment = token.callback.partition("#")
    location = f"{base}{'&' if '?' in base else '?'}{extra}{hash_mark}{fragment}"
    return web.Response(status=302, headers={"Location": location})


async def access_token(request: web.Request, caller: Caller) -> web.StreamResponse:
    """RFC 5849 §2.3: token credentials, bound to the approving user; never expire."""
    state = request.app[OAUTH]
    assert caller.request_token is not None  # authenticate() checked it and its verifier
    token = state.tokens.exchange(caller.request_token)
    if token.user not in state.users:
        state.users.append(token.user)
    return _form({"oauth_token": token.token, "oauth_token_secret": token.secret})


def add_oauth_routes(app: web.Application) -> None:
    app[OAUTH] = OAuthState()
    app.router.add_post("/v1/requestToken", signed("consumer", request_token))
    app.router.add_get("/v1/oauth_verification", authorize_page)
    app.router.add_post("/v1/accessToken", signed("request", access_token))
