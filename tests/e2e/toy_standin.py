"""The toy upstream's stand-in (tests/upstreams/toy.py): an OAuth 2 authorization
server (RFC 6749 §4.1) and a one-route API, checking what a real one would.

- ``GET /v1/authorize?response_type=code&client_id=..&redirect_uri=..&state=..&user=<id>``:
  the user (``user``, standing for a login form) approves: ``302`` to
  ``redirect_uri?code=..&state=..``.
- ``POST /v1/token`` (client credentials in HTTP Basic; form ``grant_type``,
  ``code``, ``redirect_uri``, which must be the authorize call's): a code is
  usable once; ``{"access_token": .., "token_type": "Bearer"}``.
- ``GET /v1/whoami`` with ``Authorization: Bearer <token>``: ``{"principal": ..}``
  (``toy-shared`` for the shared token), else 401.

Every request is recorded in :attr:`ToyStandin.seen`.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

CLIENT_ID = "toy-client"
CLIENT_SECRET = "toy-client-secret-0123"
SHARED_TOKEN = "toy-shared-token-4567"


@dataclass
class ToyStandin:
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (user, redirect)
    tokens: dict[str, str] = field(default_factory=lambda: {SHARED_TOKEN: "toy-shared"})
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("response_type") != "code" or q.get("client_id") != CLIENT_ID:
            return web.json_response({"error": "invalid_request"}, status=400)
        code = secrets.token_hex(8)
        self.codes[code] = (q["user"], q["redirect_uri"])
        target = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}"
        return web.Response(status=302, headers={"Location": target})

    async def token(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response({"error": "invalid_client"}, status=401)
        form = await request.post()
        found = self.codes.pop(str(form.get("code", "")), None)
        if (
            form.get("grant_type") != "authorization_code"
            or found is None
            or found[1] != form.get("redirect_uri")
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        access = "toy-access-" + secrets.token_hex(8)
        self.tokens[access] = found[0]
        return web.json_response({"access_token": access, "token_type": "Bearer"})

    async def whoami(self, request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        self.seen.append({"path": request.path, "token": token})
        principal = self.tokens.get(token) if scheme == "Bearer" else None
        if principal is None:
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"principal": principal})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/authorize", self.authorize)
        app.router.add_post("/v1/token", self.token)
        app.router.add_get("/v1/whoami", self.whoami)
        return app
