"""A local stand-in of the BuzzStream API v1.0 (docs/upstreams.md § buzzstream).

Served under ``/v1``; every call but the approval page is OAuth 1.0a signed and
rate-limited per user (see :mod:`.buzzstream_oauth`, which also serves the
3-legged flow). The resources live in memory:

- ``GET/POST /v1/<resource>`` for :data:`RESOURCES`: a Paginator
  (``offset``, ``max_results``, ``expand=true``) or a create from a JSON or
  form-encoded body (``201``); ``GET/PUT/DELETE /v1/<resource>/<id>``;
  ``GET /v1/<resource>/<id>/<sub>`` a plain list; ``GET /v1/users/<id>``.
- Every resource is named by an absolute URI under the stand-in's own base URL
  (``http://<its host>/v1/websites/1``, as the real API answers
  ``https://api.buzzstream.com/v1/websites/1``); setting ``api_root`` pins it.
- Errors are ``{"message": ...}``; canned ones (:data:`CANNED`):
  ``/v1/projects/forbidden`` 403, ``/v1/links/broken`` 500,
  ``/v1/tags/html`` 502 HTML, ``/v1/tags/text`` 503 text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from gateway.standins.buzzstream_oauth import (
    OAUTH,
    Reply,
    add_oauth_routes,
    refuse,
    signed,
)
from gateway.standins.compression import gzip_middleware
from gateway.standins.faults import add_fault_routes, recording_middleware
from gateway.standins.oauth1_verify import Caller
from gateway.standins.recorder import SETTINGS, add_inspection_routes

# The URIs are kept under this root and shown under the stand-in's own base URL.
API_ROOT = "https://api.buzzstream.com/v1"
RESOURCES = ("websites", "people", "projects", "history", "links", "tags")
DEFAULTS: dict[str, Any] = {
    "consumers": {"standin-consumer-key": "standin-consumer-secret"},
    "timestamp_window": 300,
    "rate_per_second": 5,
    "suspend_step": 2.0,
    "api_root": None,  # None: the base URL the request reached (scheme, Host, /v1)
}


@dataclass
class BuzzState:
    store: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)


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


def _root(request: web.Request) -> str:
    pinned = request.app[SETTINGS].get("api_root")
    return str(pinned).rstrip("/") if pinned else f"{request.scheme}://{request.host}/v1"


def _swap(data: Any, old: str, new: str) -> Any:
    """Every string under ``old`` (a URI root) moved under ``new``."""
    if isinstance(data, str):
        return new + data[len(old) :] if data.startswith(old + "/") else data
    if isinstance(data, list):
        return [_swap(v, old, new) for v in data]
    if isinstance(data, dict):
        return {k: _swap(v, old, new) for k, v in data.items()}
    return data


def _reply(request: web.Request, data: Any, status: int = 200) -> web.Response:
    """A JSON reply whose URIs name this server, as the real API's name its own host."""
    return web.json_response(_swap(data, API_ROOT, _root(request)), status=status)


def _expand(request: web.Request) -> bool:
    return request.query.get("expand", "").lower() in ("true", "1")


async def _arguments(request: web.Request) -> dict[str, Any]:
    """The fields of a create or update: a JSON object or a form-encoded body."""
    body = await request.read()
    if not body:
        return {}
    if request.content_type == "application/x-www-form-urlencoded":
        fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return dict(_swap(fields, _root(request), API_ROOT))
    if request.content_type != "application/json":
        raise refuse(400, f"Unsupported content type: {request.content_type}")
    try:
        parsed = json.loads(body)
    except ValueError:
        raise refuse(400, "Malformed JSON body") from None
    if not isinstance(parsed, dict):
        raise refuse(400, "Expected a JSON object")
    return dict(_swap(parsed, _root(request), API_ROOT))


def _int_query(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, str(default))
    if not raw.isdigit():
        raise refuse(400, f"{name} must be a non-negative integer")
    return int(raw)


async def collection(request: web.Request, caller: Caller) -> web.StreamResponse:
    resource = request.match_info["resource"]
    items = request.app[STATE].store.get(resource)
    if items is None:
        raise refuse(404, "Not found")
    if request.method == "POST":
        fields = await _arguments(request)
        if resource == "websites" and not fields.get("url"):
            raise refuse(400, "url is required")
        ident = max(items, default=0) + 1
        items[ident] = {**fields, "id": ident, "uri": _uri(resource, ident)}
        return _reply(request, items[ident], status=201)
    offset, max_results = _int_query(request, "offset", 0), _int_query(request, "max_results", 50)
    page = [items[i] for i in sorted(items)][offset : offset + max_results]
    listed = page if _expand(request) else [item["uri"] for item in page]
    paginator = {"list": listed, "offset": offset, "max_results": max_results}
    return _reply(request, paginator | {"numResults": len(items)})


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
        raise refuse(404, "Not found")
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
    return _reply(request, items[ident])


async def sub_collection(request: web.Request, caller: Caller) -> web.StreamResponse:
    parent = _uri(*_lookup(request))
    children = request.app[STATE].store.get(request.match_info["sub"])
    if children is None:
        raise refuse(404, "Not found")
    linked = [
        c
        for _, c in sorted(children.items())
        if any(v == parent or (isinstance(v, list) and parent in v) for v in c.values())
    ]
    return _reply(request, linked if _expand(request) else [c["uri"] for c in linked])


async def user(request: web.Request, caller: Caller) -> web.StreamResponse:
    raw_id = request.match_info["id"]
    users = request.app[OAUTH].users  # every user that approved a token
    if not raw_id.isdigit() or not 1 <= int(raw_id) <= len(users):
        raise refuse(404, "Not found")
    ident = int(raw_id)
    return _reply(request, {"id": ident, "uri": _uri("users", ident), "name": users[ident - 1]})


def create_app(settings: dict[str, Any] | None = None) -> web.Application:
    app = web.Application(middlewares=[gzip_middleware, recording_middleware])
    add_inspection_routes(app, {**DEFAULTS, **(settings or {})})
    app[STATE] = BuzzState()
    _seed(app[STATE])
    add_fault_routes(app, "/v1")
    add_oauth_routes(app)
    r = app.router
    r.add_get("/v1/users/{id}", signed("access", user))
    for method in ("GET", "POST"):
        r.add_route(method, "/v1/{resource}", signed("access", collection))
    for method in ("GET", "PUT", "DELETE"):
        r.add_route(method, "/v1/{resource}/{id}", signed("access", member))
    r.add_get("/v1/{resource}/{id}/{sub}", signed("access", sub_collection))
    return app
