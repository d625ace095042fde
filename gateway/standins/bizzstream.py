"""Local stand-in of the BizzStream REST API (docs/upstreams.md § bizzstream).

Routes:

- ``POST /oauth/token``          OAuth 2 client-credentials grant (RFC 6749 §4.4)
- ``ANY  /api/v1/documents``     in-memory documents (GET/POST/PUT/PATCH/DELETE)
- ``ANY  /api/v1/fail/{status}`` an error body with that status (500: internal_error)
- ``ANY  /__fault/...``          see :mod:`gateway.standins.faults`
- ``POST /__standin/expire_tokens`` every granted token expires now

Every ``/api/...`` call needs ``Authorization: Bearer <token>`` and
``environment-id``. Stats: ``auth_failures`` (unauthorized and forbidden),
``token_expired``, ``token_grants``, ``token_grant_failures``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from gateway.standins.compression import gzip_middleware
from gateway.standins.faults import add_fault_routes, recording_middleware, seen_of
from gateway.standins.recorder import RECORDER, SETTINGS, add_inspection_routes

DEFAULTS: dict[str, Any] = {
    "tokens": ["standin-bizz-token"],
    "expired_tokens": [],
    "environment_id": "env-standin",
    "client_id": "standin-client",
    "client_secret": "standin-client-secret",
    "token_ttl": 3600,
}

Doc = dict[str, Any]
STORE: web.AppKey[dict[str, dict[str, Doc]]] = web.AppKey("bizz_store")  # ddName -> _id -> doc
GRANTED: web.AppKey[dict[str, float]] = web.AppKey("bizz_granted")  # minted token -> expiry

_VALIDATION_MESSAGE = "The data submitted is not in the expected format."
_VALIDATION_USER = (
    "Looks like there's an issue with the data you provided. "
    "Please double-check the input and try again."
)
_TEXTS: dict[str, tuple[str, str]] = {  # error code -> (message, userDescription)
    "validation_error": (_VALIDATION_MESSAGE, _VALIDATION_USER),
    "unauthorized": ("You are not authorized.", "Please sign in again."),
    "token_expired": ("Your token has expired.", "Your session has expired. Please sign in."),
    "forbidden": ("Access to this environment is forbidden.", "You do not have access."),
    "not_found": ("The requested resource was not found.", "We could not find what you asked."),
    "method_not_allowed": ("Method not allowed.", "This action is not possible."),
    "internal_error": ("An internal error occurred.", "Something went wrong. Please try later."),
}
_MISSING = object()


def error(
    status: int, code: str, description: str, validation: list[dict[str, str]] | None = None
) -> web.Response:
    message, user = _TEXTS.get(code, _TEXTS["internal_error"])
    body: dict[str, Any] = {
        "status": "error",
        "error": code,
        "description": description,
        "message": message,
        "userDescription": user,
    }
    if 400 <= status < 500:
        body["validationErrors"] = validation or []
    return web.json_response(body, status=status)


def invalid(field: str, text: str) -> web.Response:
    return error(
        400, "validation_error", f"Query error: {text}", [{"field": field, "message": text}]
    )


def _check_auth(request: web.Request) -> web.Response | None:
    settings, rec, seen = request.app[SETTINGS], request.app[RECORDER], seen_of(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    seen.principal = token or None
    expired = token in settings["expired_tokens"] or (
        request.app[GRANTED].get(token, float("inf")) <= time.time()
    )
    if scheme.lower() != "bearer" or not token or (token not in settings["tokens"] and not expired):
        seen.auth_ok, seen.auth_error = False, "unauthorized"
        rec.count("auth_failures")
        return error(401, "unauthorized", "Missing or invalid bearer token.")
    if expired:
        seen.auth_ok, seen.auth_error = False, "token_expired"
        rec.count("token_expired")
        return error(401, "token_expired", "The access token has expired.")
    if request.headers.get("environment-id") != settings["environment_id"]:
        seen.auth_ok, seen.auth_error = False, "forbidden"
        rec.count("auth_failures")
        return error(403, "forbidden", "Missing or unknown environment-id header.")
    return None


async def oauth_token(request: web.Request) -> web.Response:
    settings, rec, seen = request.app[SETTINGS], request.app[RECORDER], seen_of(request)
    form = await request.post()
    basic = request.headers.get("Authorization", "")
    if basic.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(basic[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        raw_id, _, raw_secret = decoded.partition(":")
        client_id, client_secret = unquote_plus(raw_id), unquote_plus(raw_secret)
    else:
        client_id, client_secret = (
            str(form.get("client_id", "")),
            str(form.get("client_secret", "")),
        )
    seen.principal = client_id or None
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if client_id != settings["client_id"] or not secrets.compare_digest(
        client_secret.encode(), str(settings["client_secret"]).encode()
    ):
        seen.auth_ok, seen.auth_error = False, "invalid_client"
        rec.count("token_grant_failures")
        if basic:
            headers["WWW-Authenticate"] = 'Basic realm="standin"'
        return web.json_response({"error": "invalid_client"}, status=401, headers=headers)
    grant = form.get("grant_type")
    if grant != "client_credentials":
        seen.auth_ok, seen.auth_error = False, "grant_type"
        rec.count("token_grant_failures")
        code = "invalid_request" if grant is None else "unsupported_grant_type"
        return web.json_response({"error": code}, status=400, headers=headers)
    token = secrets.token_urlsafe(24)
    ttl = int(settings["token_ttl"])
    settings["tokens"] = [*settings["tokens"], token]
    request.app[GRANTED][token] = time.time() + ttl
    rec.count("token_grants")
    body: dict[str, Any] = {"access_token": token, "token_type": "Bearer", "expires_in": ttl}
    if "scope" in form:
        body["scope"] = str(form["scope"])
    return web.json_response(body, headers=headers)


def _lookup(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _op(op: str, value: Any, arg: Any) -> bool:
    if op == "$exists":
        return (value is not _MISSING) == bool(arg)
    if op in ("$eq", "$ne"):
        same = value == arg or (isinstance(value, list) and arg in value)
        return same if op == "$eq" else not same
    if op in ("$in", "$nin"):
        if not isinstance(arg, list):
            raise ValueError(f"{op} needs an array")
        hit = any(_op("$eq", value, a) for a in arg)
        return hit if op == "$in" else not hit
    if op in ("$gt", "$gte", "$lt", "$lte"):
        try:
            if op == "$gt":
                return bool(value > arg)
            if op == "$gte":
                return bool(value >= arg)
            return bool(value < arg) if op == "$lt" else bool(value <= arg)
        except TypeError:
            return False
    raise ValueError(f"unknown operator {op}")


def _matches(doc: Doc, query: dict[str, Any]) -> bool:
    """Mongo-ish match; evaluates every clause so that a bad operator always raises."""
    hits: list[bool] = []
    for key, cond in query.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not all(isinstance(q, dict) for q in cond):
                raise ValueError(f"{key} needs an array of objects")
            parts = [_matches(doc, q) for q in cond]
            hits.append(all(parts) if key == "$and" else any(parts))
        elif key.startswith("$"):
            raise ValueError(f"unknown operator {key}")
        elif isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond):
            hits.extend([_op(op, _lookup(doc, key), arg) for op, arg in cond.items()])
        else:
            hits.append(_op("$eq", _lookup(doc, key), cond))
    return all(hits)


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is _MISSING or value is None:
        return (0, 0)
    if isinstance(value, bool | int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value, sort_keys=True))


def _json_param(request: web.Request, name: str) -> dict[str, Any]:
    raw = request.query.get(name)
    if raw is None:
        return {}
    value = json.loads(raw)  # ValueError on malformed JSON
    if not isinstance(value, dict):
        raise ValueError(f'"{name}" must be of type object')
    return value


def _apply_options(docs: list[Doc], options: dict[str, Any]) -> list[Doc]:
    sort, fields = options.get("sort", {}), options.get("fields", {})
    skip, limit = options.get("skip", 0), options.get("limit", 0)
    if not isinstance(sort, dict) or not all(v in (1, -1) for v in sort.values()):
        raise ValueError('"sort" must map fields to 1 or -1')
    if not isinstance(fields, dict) or not all(v in (0, 1, True, False) for v in fields.values()):
        raise ValueError('"fields" must map fields to 0 or 1')
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (skip, limit)):
        raise ValueError('"skip" and "limit" must be non-negative integers')
    for key, direction in reversed(list(sort.items())):
        docs = sorted(docs, key=lambda d: _sort_key(_lookup(d, key)), reverse=direction == -1)
    docs = docs[skip : skip + limit if limit else None]
    if fields:
        keep = {k.split(".")[0] for k, v in fields.items() if v}
        drop = {k.split(".")[0] for k, v in fields.items() if not v}
        if keep and "_id" not in drop:
            keep.add("_id")
        docs = [
            {k: v for k, v in d.items() if (k in keep if keep else k not in drop)} for d in docs
        ]
    return docs


async def _body_object(request: web.Request) -> tuple[Doc | None, web.Response | None]:
    try:
        body = json.loads(await request.text())
    except ValueError:
        return None, error(400, "validation_error", "Body error: body is not valid JSON")
    if not isinstance(body, dict):
        return None, error(400, "validation_error", 'Body error: "value" must be of type object')
    return body, None


def _required(request: web.Request, *names: str) -> web.Response | None:
    missing = [n for n in names if not request.query.get(n)]
    if not missing:
        return None
    errors = [{"field": n, "message": f'"{n}" is required'} for n in missing]
    return error(400, "validation_error", f"Query error: {errors[0]['message']}", errors)


async def documents(request: web.Request) -> web.Response:
    method, q = request.method, request.query
    if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        return error(405, "method_not_allowed", f"Method {method} is not allowed here.")
    needed = ("ddName",) if method in ("GET", "POST") else ("ddName", "_id")
    if problem := _required(request, *needed):
        return problem
    store = request.app[STORE].setdefault(q["ddName"], {})
    if method == "GET":
        found = [
            d
            for d in store.values()
            if q.get("_id", d["_id"]) == d["_id"]
            and ("externalId" not in q or d.get("externalId") == q["externalId"])
        ]
        field = "query"
        try:
            query = _json_param(request, "query")
            _matches({}, query)  # validates the query even when nothing is stored
            found = [d for d in found if _matches(d, query)]
            field = "options"
            found = _apply_options(found, _json_param(request, "options"))
        except ValueError as exc:
            return invalid(field, f'"{field}" is invalid: {exc}')
        if "_id" in q and not found:
            return error(404, "not_found", f"Document {q['_id']} was not found.")
        return web.json_response({"status": "ok", "documents": found})
    if method == "DELETE":
        if store.pop(q["_id"], None) is None:
            return error(404, "not_found", f"Document {q['_id']} was not found.")
        return web.json_response({"status": "ok", "deleted": 1})
    body, problem = await _body_object(request)
    if body is None:
        return problem or error(400, "validation_error", "Body error")
    if method == "POST":
        doc_id = body.get("_id") or secrets.token_hex(9)
        if not isinstance(doc_id, str) or doc_id in store:
            return invalid("_id", '"_id" must be a new string')
        store[doc_id] = {**body, "_id": doc_id}
        return web.json_response({"status": "ok", "document": store[doc_id]}, status=201)
    if q["_id"] not in store:
        return error(404, "not_found", f"Document {q['_id']} was not found.")
    base = store[q["_id"]] if method == "PATCH" else {}
    store[q["_id"]] = {**base, **body, "_id": q["_id"]}
    return web.json_response({"status": "ok", "document": store[q["_id"]]})


async def api(request: web.Request) -> web.Response:
    if denied := _check_auth(request):
        return denied
    tail = request.match_info["tail"].rstrip("/")
    if tail == "v1/documents":
        return await documents(request)
    if fail := re.fullmatch(r"v1/fail/(\d{3})", tail):
        status = int(fail.group(1))
        codes = {400: "validation_error", 401: "unauthorized", 403: "forbidden", 404: "not_found"}
        code = codes.get(status, "internal_error" if status >= 500 else "validation_error")
        return error(status, code, f"Deliberate failure with status {status}.")
    return error(404, "not_found", f"No route for {request.method} {request.path}.")


async def expire_tokens(request: web.Request) -> web.Response:
    """Every granted token expires now (its next use answers ``token_expired``)."""
    granted = request.app[GRANTED]
    for token in granted:
        granted[token] = 0.0
    return web.json_response({"ok": True, "expired": len(granted)})


def create_app(settings: dict[str, Any] | None = None) -> web.Application:
    app = web.Application(middlewares=[gzip_middleware, recording_middleware])
    merged = json.loads(json.dumps(DEFAULTS))  # deep copy: lists are mutated at run time
    merged.update(settings or {})
    add_inspection_routes(app, merged)
    app[STORE] = {}
    app[GRANTED] = {}
    app.router.add_post("/oauth/token", oauth_token)
    app.router.add_post("/__standin/expire_tokens", expire_tokens)
    app.router.add_route("*", "/api/{tail:.*}", api)
    add_fault_routes(app, "")
    return app
