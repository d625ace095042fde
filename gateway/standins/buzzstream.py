"""A local stand-in of the BuzzStream API v1.0 (``upstreams.md`` § buzzstream).

Served under ``/v1``. Every ``/v1`` call except the authorize page must carry a
valid OAuth 1.0a HMAC-SHA1 ``Authorization`` header (see :mod:`.oauth1_verify`);
refusals are ``401 {"message": ...}`` (``400`` for malformed headers, RFC 5849 §3.2).

- ``POST /v1/requestToken``, ``GET /v1/oauth_verification``, ``POST /v1/accessToken``:
  the 3-legged flow; the authorize page auto-approves for ``?user=NAME``.
- ``/v1/<resource>`` and ``/v1/<resource>/<id>`` for the resources in
  :data:`RESOURCES` (in memory), ``/v1/<resource>/<id>/<sub>``, ``/v1/users/<id>``.
- Canned errors: ``/v1/projects/forbidden`` 403, ``/v1/links/broken`` 500,
  ``/v1/tags/html`` 502 HTML, ``/v1/tags/text`` 503 text.
- Rate limit: ``rate_per_second`` calls per user; excess calls are suspended in
  ``suspend_step``-second steps, never refused.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from gateway.standins.faults import add_fault_routes, recording_middleware, seen_of
from gateway.standins.oauth1_verify import (
    Caller,
    OAuthRefused,
    SignedRequest,
    TokenStore,
    authenticate,
    base_string_uri,
)
from gateway.standins.recorder import RECORDER, SETTINGS, add_inspection_routes

API_ROOT = "https://api.buzzstream.com/v1"
RESOURCES = ("websites", "people", "projects", "history", "links", "tags")
DEFAULTS: dict[str, Any] = {
    "consumers": {"standin-consumer-key": "standin-consumer-secret"},
    "timestamp_window": 300,
    "rate_per_second": 5,
    "suspend_step": 2.0,
}
DEFAULT_USER = "standin-user"

Handler = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]
RawHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class BuzzState:
    tokens: TokenStore = field(default_factory=TokenStore)
    admitted: dict[str, deque[float]] = field(default_factory=dict)  # per principal
    store: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    users: dict[int, dict[str, Any]] = field(default_factory=dict)


STATE = web.AppKey("buzzstream_state", BuzzState)


def _uri(resource: str, ident: int) -> str:
    return f"{API_ROOT}/{resource}/{ident}"


def _seed(state: BuzzState) -> None:
    seed: dict[str, list[dict[str, Any]]] = {
        "websites": [
            {"url": "https://example.com", "name": "Example"},
            {"url": "https://example.org", "name": "Example Org"},
        ],
        "people": [{"name": "Ada Lovelace", "website": _uri("websites", 1)}],
        "projects": [{"name": "Launch"}],
        "history": [{"type": "Note", "summary": "first contact", "website": _uri("websites", 1)}],
        "links": [{"linkingFrom": "https://example.com/a", "linkingTo": "https://ours.example"}],
        "tags": [{"name": "priority"}],
    }
    for resource in RESOURCES:
        items = state.store.setdefault(resource, {})
        for i, fields in enumerate(seed[resource], start=1):
            items[i] = {"id": i, "uri": _uri(resource, i), **fields}
    state.users[1] = {"id": 1, "uri": _uri("users", 1), "name": DEFAULT_USER}


def _message(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


class Reply(Exception):
    """Raised by a handler to answer at once with ``response``."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _refuse(status: int, message: str) -> Reply:
    return Reply(_message(status, message))


def _expand(request: web.Request) -> bool:
    return request.query.get("expand", "").lower() in ("true", "1")


async def admit(state: BuzzState, principal: str, rate: int, step: float) -> int:
    """Suspend until fewer than ``rate`` calls of ``principal`` were answered in the
    last second, in ``step``-second sleeps; return how many steps were slept."""
    steps = 0
    while True:
        now = time.monotonic()
        recent = state.admitted.setdefault(principal, deque())
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        if len(recent) < max(1, rate):
            recent.append(now)  # answered now: nothing below awaits for long
            return steps
        steps += 1
        await asyncio.sleep(step)


def signed(kind: str, handler: Handler) -> RawHandler:
    """Wrap ``handler``: record, verify the OAuth signature, then rate-limit."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorder, settings, state = request.app[RECORDER], request.app[SETTINGS], request.app[STATE]
        seen = seen_of(request)
        signed_request = SignedRequest(
            method=request.method,
            uri=base_string_uri(
                request.url.scheme,
                request.url.host or "",
                request.url.port,
                request.rel_url.raw_path,
            ),
            raw_query=request.rel_url.raw_query_string,
            authorization=request.headers.get("Authorization", ""),
            content_type=request.headers.get("Content-Type", ""),
            body=body,
        )
        try:
            caller = authenticate(
                signed_request,
                settings["consumers"],
                float(settings["timestamp_window"]),
                state.tokens,
                kind,
                time.time(),
            )
        except OAuthRefused as exc:
            recorder.count("auth_failures")
            if exc.stat:
                recorder.count(exc.stat)
            seen.auth_ok, seen.auth_error = False, exc.message
            response = _message(exc.status, exc.message)
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'OAuth realm="standin"'
            return response
        seen.principal = caller.principal
        steps = await admit(
            state, caller.principal, int(settings["rate_per_second"]), settings["suspend_step"]
        )
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
    callback = caller.params.get("oauth_callback")
    if not callback:
        raise _refuse(400, "Missing OAuth parameter: oauth_callback")
    token = request.app[STATE].tokens.new_request_token(caller.consumer, callback)
    return _form(
        {"oauth_token": token.token, "oauth_token_secret": token.secret}
        | {"oauth_callback_confirmed": "true"}
    )


async def authorize_page(request: web.Request) -> web.StreamResponse:
    """The web app's approval page; the stand-in approves at once for ``?user=``."""
    seen = seen_of(request)
    user = request.query.get("user") or DEFAULT_USER
    seen.principal = user
    token = request.app[STATE].tokens.request_tokens.get(request.query.get("oauth_token", ""))
    if token is None:
        return _message(400, "Unknown request token")
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
    state = request.app[STATE]
    assert caller.request_token is not None  # authenticate() checked it
    token = state.tokens.exchange(caller.request_token)
    if not any(u["name"] == token.user for u in state.users.values()):
        ident = max(state.users, default=0) + 1
        state.users[ident] = {"id": ident, "uri": _uri("users", ident), "name": token.user}
    return _form({"oauth_token": token.token, "oauth_token_secret": token.secret})


async def _arguments(request: web.Request) -> dict[str, Any]:
    """The fields of a create or update: a JSON object or a form-encoded body."""
    body = await request.read()
    if not body:
        return {}
    if request.content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if request.content_type != "application/json":
        raise _refuse(400, f"Unsupported content type: {request.content_type}")
    try:
        parsed = json.loads(body)
    except ValueError:
        raise _refuse(400, "Malformed JSON body") from None
    if not isinstance(parsed, dict):
        raise _refuse(400, "Expected a JSON object")
    return parsed


def _int_query(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, str(default))
    if not raw.isdigit():
        raise _refuse(400, f"{name} must be a non-negative integer")
    return int(raw)


async def collection(request: web.Request, caller: Caller) -> web.StreamResponse:
    resource = request.match_info["resource"]
    items = request.app[STATE].store.get(resource)
    if items is None:
        raise _refuse(404, "Not found")
    if request.method == "POST":
        fields = await _arguments(request)
        if resource == "websites" and not fields.get("url"):
            raise _refuse(400, "url is required")
        ident = max(items, default=0) + 1
        items[ident] = {**fields, "id": ident, "uri": _uri(resource, ident)}
        return web.json_response(items[ident], status=201)
    offset, max_results = _int_query(request, "offset", 0), _int_query(request, "max_results", 50)
    page = [items[i] for i in sorted(items)][offset : offset + max_results]
    listed = page if _expand(request) else [item["uri"] for item in page]
    paginator = {"list": listed, "offset": offset, "max_results": max_results}
    return web.json_response(paginator | {"numResults": len(items)})


CANNED: dict[tuple[str, str], Callable[[], web.Response]] = {
    ("projects", "forbidden"): lambda: web.json_response({"error": "Forbidden"}, status=403),
    ("links", "broken"): lambda: web.json_response({"errors": ["backend exploded"]}, status=500),
    ("tags", "html"): lambda: web.Response(
        status=502,
        text="<html><body><h1>502 Bad Gateway</h1></body></html>",
        content_type="text/html",
    ),
    ("tags", "text"): lambda: web.Response(
        status=503, text="Service temporarily unavailable", content_type="text/plain"
    ),
}


def _lookup(request: web.Request) -> tuple[str, int]:
    resource, raw_id = request.match_info["resource"], request.match_info["id"]
    if (resource, raw_id) in CANNED and request.method == "GET":
        raise Reply(CANNED[resource, raw_id]())
    items = request.app[STATE].store.get(resource)
    if items is None or not raw_id.isdigit() or int(raw_id) not in items:
        raise _refuse(404, "Not found")
    return resource, int(raw_id)


async def member(request: web.Request, caller: Caller) -> web.StreamResponse:
    resource, ident = _lookup(request)
    items = request.app[STATE].store[resource]
    if request.method == "DELETE":
        del items[ident]
        return web.Response(status=204)
    if request.method == "PUT":
        fields = await _arguments(request)
        items[ident] = {**items[ident], **fields, "id": ident, "uri": _uri(resource, ident)}
    return web.json_response(items[ident])


async def sub_collection(request: web.Request, caller: Caller) -> web.StreamResponse:
    parent = _uri(*_lookup(request))
    children = request.app[STATE].store.get(request.match_info["sub"])
    if children is None:
        raise _refuse(404, "Not found")
    linked = [
        c
        for _, c in sorted(children.items())
        if any(v == parent or (isinstance(v, list) and parent in v) for v in c.values())
    ]
    return web.json_response(linked if _expand(request) else [c["uri"] for c in linked])


async def user(request: web.Request, caller: Caller) -> web.StreamResponse:
    raw_id = request.match_info["id"]
    users = request.app[STATE].users
    if not raw_id.isdigit() or int(raw_id) not in users:
        raise _refuse(404, "Not found")
    return web.json_response(users[int(raw_id)])


def create_app(settings: dict[str, Any] | None = None) -> web.Application:
    app = web.Application(middlewares=[recording_middleware])
    add_inspection_routes(app, {**DEFAULTS, **(settings or {})})
    app[STATE] = BuzzState()
    _seed(app[STATE])
    add_fault_routes(app, "/v1")
    r = app.router
    r.add_post("/v1/requestToken", signed("consumer", request_token))
    r.add_get("/v1/oauth_verification", authorize_page)
    r.add_post("/v1/accessToken", signed("request", access_token))
    r.add_get("/v1/users/{id}", signed("access", user))
    for method in ("GET", "POST"):
        r.add_route(method, "/v1/{resource}", signed("access", collection))
    for method in ("GET", "PUT", "DELETE"):
        r.add_route(method, "/v1/{resource}/{id}", signed("access", member))
    r.add_get("/v1/{resource}/{id}/{sub}", signed("access", sub_collection))
    return app
