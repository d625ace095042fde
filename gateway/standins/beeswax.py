"""Local stand-in of the Beeswax "Buzz" API (docs/upstreams.md § beeswax).

Routes (all but login need the ``<buzz_key>_buzz_cookie`` session cookie):

- ``POST /rest/authenticate``, ``/rest/v2/authenticate``  login, sets the cookies
- ``ANY  /rest/{advertiser,campaign,user}[/strict]``       0.5 envelope resources
- ``ANY  /rest/account`` (read-only: 405 on writes), ``/rest/forbidden_thing`` (403),
  ``/rest/fail`` (500 HTML), ``/rest/report_queue`` (rate limited)
- ``ANY  /rest/v2/{campaigns,advertisers}[/{id}]``         2.0 paged resources
- ``POST /__standin/expire_sessions``                      drop all sessions and remember tokens
- ``ANY  /__fault/...``                                    see :mod:`gateway.standins.faults`

Stats: ``logins``, ``login_failures``, ``login_throttled``, ``auth_failures``,
``session_renewed_by_remember``, ``session_rotated``, ``report_queue_throttled``.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from collections import deque
from typing import Any

from aiohttp import web

from gateway.standins.beeswax_resources import BAD_JSON, STATE, State, seed, v05, v2
from gateway.standins.compression import gzip_middleware
from gateway.standins.faults import add_fault_routes, html_500, recording_middleware, seen_of
from gateway.standins.recorder import RECORDER, SETTINGS, add_inspection_routes

DEFAULTS: dict[str, Any] = {
    "buzz_key": "standin",
    "email": "ops@example.com",
    "password": "standin-password",
    "users": {},  # extra accounts: email -> password
    "session_ttl": 900,
    "remember_ttl": 86400,
    "login_limit_per_minute": 10,
    "report_queue_per_second": 1,
    "rotate_every": 0,
    "rotation_grace": 5,
    "v2_campaign_count": 120,
    "login_delay": 0,  # seconds a login takes (tests: a replica killed mid-login)
}


def envelope(
    status: int, errors: list[str], headers: dict[str, str] | None = None, **fields: Any
) -> web.Response:
    body = {"success": False, **fields, "errors": errors}
    return web.json_response(body, status=status, headers=headers)


def _window(times: deque[float], now: float, span: float) -> deque[float]:
    while times and times[0] <= now - span:
        times.popleft()
    return times


def _mint(table: dict[str, tuple[str, float]], email: str, ttl: float) -> str:
    value = secrets.token_urlsafe(24)
    table[value] = (email, time.time() + ttl)
    return value


async def authenticate(request: web.Request) -> web.Response:
    s, st, rec, seen = (
        request.app[SETTINGS],
        request.app[STATE],
        request.app[RECORDER],
        seen_of(request),
    )
    seen.auth_ok = False
    if request.method != "POST":
        seen.auth_error = "method"
        return envelope(400, ["ERROR: method not supported"])
    try:
        body = json.loads(await request.text())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        seen.auth_error = "bad_request"
        return envelope(400, ["ERROR: request body must be a JSON object"])
    email, password = str(body.get("email", "")), str(body.get("password", ""))
    seen.principal = email
    now = time.time()
    attempts = _window(st.logins.setdefault(email, deque()), now, 60.0)
    if len(attempts) >= int(s["login_limit_per_minute"]):
        seen.auth_error = "throttled"
        rec.count("login_throttled")
        retry = max(1, math.ceil(attempts[0] + 60.0 - now))
        headers = {"Retry-After": str(retry)}
        return envelope(429, ["ERROR: Too many login attempts"], headers=headers)
    attempts.append(now)
    accounts = {s["email"]: s["password"], **s["users"]}
    if email not in accounts or not secrets.compare_digest(
        password.encode(), str(accounts[email]).encode()
    ):
        seen.auth_error = "invalid_credentials"
        rec.count("login_failures")
        errors = ["ERROR: Invalid email or password"]
        return envelope(401, errors, message="Invalid credentials")
    if float(s["login_delay"]) > 0:
        await asyncio.sleep(float(s["login_delay"]))
    seen.auth_ok = True
    rec.count("logins")
    response = web.json_response({"success": "true", "message": "Cookie set successfully"})
    key = s["buzz_key"]
    session = _mint(st.sessions, email, float(s["session_ttl"]))
    response.set_cookie(f"{key}_buzz_cookie", session, path="/", httponly=True)
    if body.get("keep_logged_in") in (True, 1, "true", "True", "1"):
        ttl = float(s["remember_ttl"])
        token = _mint(st.remember, email, ttl)
        response.set_cookie(
            f"{key}_buzz_remember", token, path="/", httponly=True, max_age=max(1, math.ceil(ttl))
        )
    return response


def _session(request: web.Request) -> tuple[str | None, str | None]:
    """(email, new session value to set) for this call; email None when not authenticated."""
    s, st, rec = request.app[SETTINGS], request.app[STATE], request.app[RECORDER]
    now, key = time.time(), s["buzz_key"]
    sid = request.cookies.get(f"{key}_buzz_cookie", "")
    entry = st.sessions.get(sid)
    if entry is not None and entry[1] <= now:
        del st.sessions[sid]
        entry = None
    if entry is None:
        remembered = st.remember.get(request.cookies.get(f"{key}_buzz_remember", ""))
        if remembered is None or remembered[1] <= now:
            return None, None
        rec.count("session_renewed_by_remember")
        return remembered[0], _mint(st.sessions, remembered[0], float(s["session_ttl"]))
    st.calls += 1
    every = int(s["rotate_every"])
    if every > 0 and st.calls % every == 0:
        rec.count("session_rotated")
        st.sessions[sid] = (entry[0], min(entry[1], now + float(s["rotation_grace"])))
        return entry[0], _mint(st.sessions, entry[0], float(s["session_ttl"]))
    return entry[0], None


async def rest(request: web.Request) -> web.StreamResponse:
    s, rec, seen = request.app[SETTINGS], request.app[RECORDER], seen_of(request)
    email, new_session = _session(request)
    if email is None:
        seen.auth_ok, seen.auth_error = False, "not authenticated"
        rec.count("auth_failures")
        return envelope(401, ["ERROR: not authenticated"], message="Not authenticated")
    seen.principal = email
    tail = request.match_info["tail"].strip("/")
    if tail == "report_queue":
        response = _report_queue(request, email)
    elif tail == "fail":
        response = html_500()
    else:
        try:
            body = json.loads(await request.text() or "null")
        except ValueError:
            body = BAD_JSON
        if tail.startswith("v2/"):
            status, data = v2(request, tail[3:].split("/"), body)
        else:
            status, data = v05(request, tail.split("/"), body)
        response = (
            web.Response(status=status) if data is None else web.json_response(data, status=status)
        )
    if new_session is not None:
        response.set_cookie(f"{s['buzz_key']}_buzz_cookie", new_session, path="/", httponly=True)
    return response


def _report_queue(request: web.Request, tenant: str) -> web.Response:
    s, st, rec = request.app[SETTINGS], request.app[STATE], request.app[RECORDER]
    now = time.time()
    calls = _window(st.reports.setdefault(tenant, deque()), now, 1.0)
    if len(calls) >= int(s["report_queue_per_second"]):
        rec.count("report_queue_throttled")
        retry = {"Retry-After": str(max(1, math.ceil(calls[0] + 1.0 - now)))}
        return envelope(429, ["ERROR: Report queue rate limit exceeded"], headers=retry)
    calls.append(now)
    st.report_id += 1
    return web.json_response({"success": True, "payload": {"report_id": st.report_id}})


async def expire_sessions(request: web.Request) -> web.Response:
    st = request.app[STATE]
    expired = len(st.sessions) + len(st.remember)
    st.sessions.clear()
    st.remember.clear()
    return web.json_response({"ok": True, "expired": expired})


def create_app(settings: dict[str, Any] | None = None) -> web.Application:
    app = web.Application(middlewares=[gzip_middleware, recording_middleware])
    merged = json.loads(json.dumps(DEFAULTS))
    merged.update(settings or {})
    add_inspection_routes(app, merged)
    app[STATE] = State()
    seed(app[STATE], int(merged["v2_campaign_count"]))
    app.router.add_post("/__standin/expire_sessions", expire_sessions)
    app.router.add_route("*", "/rest/authenticate", authenticate)
    app.router.add_route("*", "/rest/v2/authenticate", authenticate)
    app.router.add_route("*", "/rest/{tail:.*}", rest)
    add_fault_routes(app, "")
    return app
