"""A local stand-in of the StreamOne platform API v3 (docs/upstreams.md § streamone).

``POST /api/<command>/<action>``: parameters in the query (signed, see
:mod:`.streamone_verify`), arguments in a form-encoded body. The reply is always
HTTP 200 with ``{"header": {"status": S, ...}, "body": ...}``; ``S == 0`` is success.

Actions: ``item/view``, ``item/list``, ``item/create``, ``item/crash`` (1),
``user/create``, ``account/delete`` (4), ``session/initialize``, ``session/create``.
Settings (``app[SETTINGS]``): see :data:`DEFAULTS`; ``readonly: true`` answers 10.
Users who can log in (seeded on first use; the stand-in then keeps only what the
platform keeps): ``passwords`` (kept as ``H``, bcrypt cost ``bcrypt_cost``),
``v2_passwords`` (kept as the API v2 md5 hash: ``needsv2hash`` until the first
login converts them), ``hashes`` (an ``H`` as given, e.g. of another crypt scheme).
``POST /__standin/expire_sessions`` forgets every session.
"""

from __future__ import annotations

import secrets
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from gateway.standins.compression import gzip_middleware
from gateway.standins.faults import add_fault_routes, recording_middleware, seen_of
from gateway.standins.recorder import RECORDER, SETTINGS, add_inspection_routes
from gateway.standins.streamone_verify import (
    AUTH_STATUSES,
    AuthState,
    Caller,
    Failed,
    Session,
    SignedCall,
    authenticate,
    md5_hex,
    new_salt,
    response_matches,
    salt_of,
    stored_hash,
)

DEFAULTS: dict[str, Any] = {
    "users": {"user": "psk"},
    "applications": {"application": "apppsk"},
    "timestamp_window": 300,
    "invalid_auth_limit": 20,
    "passwords": {"alice": "alice-password"},
    "v2_passwords": {},
    "hashes": {},
    "bcrypt_cost": 4,
    "session_timeout": 3600,
    "readonly": False,
}
DEFAULT_TIMEZONE = "Europe/Amsterdam"
STATUS_NAMES = {
    0: "OK",
    1: "INTERNAL_ERROR",
    2: "TIMESTAMP_OUT_OF_RANGE",
    3: "AUTHENTICATION_FAILED",
    4: "ACCESS_DENIED",
    5: "INVALID_ACTION",
    6: "INPUT_ERROR",
    7: "UNKNOWN_PARAMETER",
    8: "RATE_LIMITED",
    9: "INVALID_TIMEZONE",
    10: "API_IN_READONLY_MODE",
    120: "ITEM_NOT_FOUND",
    282: "SESSION_NOT_FOUND",
    316: "USER_USERNAME_ALREADY_EXISTS",
}


@dataclass
class StreamOneState:
    auth: AuthState = field(default_factory=AuthState)
    challenges: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # app, user, salt
    hashes: dict[str, str] = field(default_factory=dict)  # username -> H
    v2_hashes: dict[str, str] = field(default_factory=dict)  # username -> md5_hex(password)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, str]] = field(default_factory=dict)  # by username


STATE = web.AppKey("streamone_state", StreamOneState)


Action = Callable[[web.Request, Caller, dict[str, str]], Any]


def _require(args: dict[str, str], *names: str) -> list[str]:
    missing = [n for n in names if not args.get(n)]
    if missing:
        raise Failed(6, f"Missing argument: {', '.join(missing)}")
    return [args[n] for n in names]


def item_view(request: web.Request, caller: Caller, args: dict[str, str]) -> Any:
    for name in args:
        if name != "id":
            raise Failed(7, f"Unknown parameter: {name}")
    (ident,) = _require(args, "id")
    item = request.app[STATE].items.get(ident)
    if item is None:
        raise Failed(120, f"Item {ident} not found")
    return item


def item_list(request: web.Request, caller: Caller, args: dict[str, str]) -> Any:
    return [item for _, item in sorted(request.app[STATE].items.items())]


def item_create(request: web.Request, caller: Caller, args: dict[str, str]) -> Any:
    (title,) = _require(args, "title")
    if args.get("public", "0") not in ("0", "1"):
        raise Failed(6, "public must be 0 or 1")
    items = request.app[STATE].items
    ident = f"item{len(items) + 1}"
    while ident in items:
        ident += "x"
    tags = [t for t in args.get("tags", "").split(",") if t]
    items[ident] = {"id": ident, "title": title, "public": args.get("public") == "1"} | {
        "tags": tags
    }
    return items[ident]


def item_crash(request: web.Request, caller: Caller, args: dict[str, str]) -> Any:
    raise Failed(1, "Internal error")


def user_create(request: web.Request, caller: Caller, args: dict[str, str]) -> Any:
    (username,) = _require(args, "username")
    users = request.app[STATE].users
    if username in users or _known_user(request, username) is not None:
        raise Failed(316, f"Username {username} already exists")
    users[username] = {"id": f"user-{username}", "username": username}
    return users[username]


def account_delete(request: web.Request, caller: Caller, args: dict[str, str]) -> Any:
    raise Failed(4, "The actor lacks the token for account/delete")


def _known_user(request: web.Request, username: str) -> str | None:
    """``"v3"`` (H kept), ``"v2"`` (md5 kept) or None; seeds a configured user once."""
    state, settings = request.app[STATE], request.app[SETTINGS]
    if username not in state.hashes and username not in state.v2_hashes:
        if username in settings["hashes"]:
            state.hashes[username] = str(settings["hashes"][username])
        elif username in settings["passwords"]:
            password = str(settings["passwords"][username])
            salt = new_salt(int(settings["bcrypt_cost"]))
            state.hashes[username] = stored_hash(md5_hex(password), salt)
        elif username in settings["v2_passwords"]:
            state.v2_hashes[username] = md5_hex(str(settings["v2_passwords"][username]))
    if username in state.hashes:
        return "v3"
    return "v2" if username in state.v2_hashes else None


def session_initialize(request: web.Request, caller: Caller, args: dict[str, str]) -> Any:
    if caller.auth_type != "application":
        raise Failed(4, "Only an application can create sessions")
    username, _userip = _require(args, "user", "userip")
    state, cost = request.app[STATE], int(request.app[SETTINGS]["bcrypt_cost"])
    kind = _known_user(request, username)
    # An unknown user gets a challenge too: the reply does not tell who exists.
    salt = salt_of(state.hashes[username]) if kind == "v3" else new_salt(cost)
    challenge = secrets.token_hex(16)
    state.challenges[challenge] = (caller.actor, username, salt)
    return {"challenge": challenge, "salt": salt, "needsv2hash": kind == "v2"}


def _login_hash(request: web.Request, username: str, salt: str, args: dict[str, str]) -> str:
    """The H to check the response against, or :class:`Failed` 3."""
    state = request.app[STATE]
    kind = _known_user(request, username)
    if kind == "v3":
        return state.hashes[username]
    if kind == "v2":
        v2hash = args.get("v2hash", "")
        if secrets.compare_digest(v2hash.encode(), state.v2_hashes[username].encode()):
            return stored_hash(v2hash, salt)
    raise Failed(3, "Invalid username or password")


def session_create(request: web.Request, caller: Caller, args: dict[str, str]) -> Any:
    if caller.auth_type != "application":
        raise Failed(4, "Only an application can create sessions")
    challenge, response = _require(args, "challenge", "response")
    state, settings = request.app[STATE], request.app[SETTINGS]
    found = state.challenges.pop(challenge, None)
    if found is None or found[0] != caller.actor:
        raise Failed(6, "Unknown or used challenge")
    _, username, salt = found
    try:
        hashed = _login_hash(request, username, salt, args)
        if not response_matches(hashed, challenge, response):
            raise Failed(3, "Invalid username or password")
    except Failed:
        request.app[RECORDER].count("login_failures")
        raise
    if username in state.v2_hashes:  # converted to the v3 scheme, as the platform does
        del state.v2_hashes[username]
        state.hashes[username] = hashed
        request.app[RECORDER].count("v2_converted")
    timeout = int(settings["session_timeout"])
    user = {"id": f"user-{username}", "username": username}
    session = Session(
        secrets.token_hex(16), secrets.token_hex(16), caller.actor, user, time.time() + timeout
    )
    state.auth.sessions[session.id] = session
    request.app[RECORDER].count("logins")
    return {"id": session.id, "key": session.key, "timeout": timeout, "user": user}


ACTIONS: dict[tuple[str, str], Action] = {
    ("item", "view"): item_view,
    ("item", "list"): item_list,
    ("item", "create"): item_create,
    ("item", "crash"): item_crash,
    ("user", "create"): user_create,
    ("account", "delete"): account_delete,
    ("session", "initialize"): session_initialize,
    ("session", "create"): session_create,
}


def _valid_timezone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        return False
    return True


def _check_parameters(request: web.Request, params: dict[str, str]) -> None:
    if params.get("api") != "3":
        raise Failed(6, "Parameter api must be 3")
    if params.get("format") != "json":
        raise Failed(6, "Parameter format must be json")
    if "account" in params and "customer" in params:
        raise Failed(6, "Give account or customer, not both")
    if "timezone" in params and not _valid_timezone(params["timezone"]):
        raise Failed(9, f"Invalid timezone: {params['timezone']}")
    if request.app[SETTINGS].get("readonly"):
        raise Failed(10, "The API is in read-only mode")


def _arguments(request: web.Request, body: bytes) -> dict[str, str]:
    if not body:
        return {}
    if request.content_type != "application/x-www-form-urlencoded":
        raise Failed(6, "Arguments must be application/x-www-form-urlencoded")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def envelope(status: int, message: str, body: Any, timezone: str, **header: Any) -> web.Response:
    head = {"status": status, "statusmessage": message, "apiversion": 3, "cacheable": False}
    return web.json_response({"header": head | {"timezone": timezone} | header, "body": body})


async def api(request: web.Request) -> web.Response:
    body = await request.read()
    seen, recorder = seen_of(request), request.app[RECORDER]
    seen.extra["raw_query"] = request.rel_url.raw_query_string  # the bytes that were signed
    params = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
    params.pop("signature", None)
    timezone = params.get("timezone", DEFAULT_TIMEZONE)
    if not _valid_timezone(timezone):
        timezone = DEFAULT_TIMEZONE
    header: dict[str, Any] = {}
    try:
        call = SignedCall(request.rel_url.raw_path, request.rel_url.raw_query_string, body)
        settings: dict[str, Any] = request.app[SETTINGS]
        try:
            caller = authenticate(call, params, settings, request.app[STATE].auth, time.time())
        except Failed as exc:
            seen.auth_ok, seen.auth_error = False, f"{STATUS_NAMES[exc.status]}: {exc.message}"
            recorder.count(exc.stat or "auth_refused")
            if exc.status in AUTH_STATUSES:
                recorder.count("auth_failures")
            raise
        seen.principal = caller.principal
        if caller.session is not None:
            header["sessiontimeout"] = max(0, round(caller.session.expires - time.time()))
        _check_parameters(request, params)
        args = _arguments(request, body)
        seen.extra["arguments"] = args
        action = ACTIONS.get((request.match_info["command"], request.match_info["action"]))
        if action is None:
            raise Failed(5, "Unknown command or action")
        result = action(request, caller, args)
    except Failed as exc:
        seen.extra["status"] = exc.status
        return envelope(exc.status, exc.message, None, timezone, **header)
    seen.extra["status"] = 0
    return envelope(0, "OK", result, timezone, **header)


async def expire_sessions(request: web.Request) -> web.Response:
    sessions = request.app[STATE].auth.sessions
    expired = len(sessions)
    sessions.clear()
    return web.json_response({"ok": True, "expired": expired})


def create_app(settings: dict[str, Any] | None = None) -> web.Application:
    app = web.Application(middlewares=[gzip_middleware, recording_middleware])
    add_inspection_routes(app, {**DEFAULTS, **(settings or {})})
    state = StreamOneState()
    for ident, title in (("item1", "First item"), ("item2", "Second item")):
        state.items[ident] = {"id": ident, "title": title, "public": True, "tags": []}
    app[STATE] = state
    add_fault_routes(app, "")
    add_fault_routes(app, "/api")  # reachable through the gateway at /streamone/__fault/...
    app.router.add_post("/api/{command}/{action}", api)
    app.router.add_post("/__standin/expire_sessions", expire_sessions)
    return app
