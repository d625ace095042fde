"""A toy fifth upstream, registered in the tests alone (issue 11; docs/architecture.md).

It proves README's "a new upstream is one module plus one registry line" for a
3-legged upstream: ``tests/e2e/test_toy_upstream.py`` puts :data:`SPEC` in
``REGISTRY`` and a ``toy`` section in the config, and nothing under
``gateway/server/`` knows it. Like the real modules it imports only the pure
layers (``gateway.core``, ``gateway.upstreams``, config reading and errors).

- Auth: ``Authorization: Bearer <token>``, the shared ``auth.token``, or the
  user's own access token when ``X-Gateway-User`` names an onboarded user.
  The quota key is ``user:<id>`` for a user's token, else ``shared``.
- Onboarding: an OAuth 2 authorization code (RFC 6749 §4.1): no first call;
  the approval page is ``<base_url>/authorize?response_type=code&client_id=..
  &redirect_uri=<callback>&state=<random>``; the callback brings ``code`` and
  ``state`` back; the code is exchanged at ``<base_url>/token`` (client
  credentials in HTTP Basic, §2.3.1) for ``{"access_token": ..}``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from gateway.config_reader import Secret, Section
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.core.problem import Problem
from gateway.errors import InvalidRequest, UpstreamAuthFailed, UpstreamError
from gateway.upstreams.base import AuthIO, Flow, KeyValueStore, UpstreamSpec
from gateway.upstreams.onboarding import (
    PRINTABLE,
    Approval,
    Fresh,
    Onboarding,
    Pending,
    Returned,
    Site,
    TokenCall,
    load_user,
)

NAME = "toy"
PREFIX = "oauth2:toy:"


@dataclass(frozen=True)
class ToyAuthSettings:
    client_id: str
    client_secret: Secret
    token: Secret  # the shared bearer token (calls without an onboarded user)
    authorize_path: str = "/authorize"
    token_path: str = "/token"


def parse_auth(section: Section) -> ToyAuthSettings:
    settings = ToyAuthSettings(
        client_id=section.text("client_id"),
        client_secret=section.secret("client_secret"),
        token=section.secret("token"),
        authorize_path=section.text("authorize_path", "/authorize"),
        token_path=section.text("token_path", "/token"),
    )
    section.done()
    return settings


@dataclass(frozen=True, slots=True)
class Bearer:
    """The credential of one call (``Credential``): a bearer token, never renewed."""

    account: str
    token: str

    def __repr__(self) -> str:
        return f"Bearer(account={self.account!r})"

    def needs_body(self, request: OutboundRequest) -> bool:
        return False

    def requires_reply_body(self, status: int) -> bool:
        return False

    async def flow(self, request: OutboundRequest) -> Flow:
        yield request.with_header("Authorization", f"Bearer {self.token}")


class ToyAuth:
    """The auth interface (``UpstreamAuth``): the user's onboarded token, else the shared one."""

    def __init__(self, settings: ToyAuthSettings, io: AuthIO) -> None:
        self._shared = Bearer("shared", settings.token.reveal())
        self._masker = io.masker  # the app's: remembers each user's token read back

    async def bind(self, user: str | None, store: KeyValueStore | None) -> Bearer:
        if user and store is not None:
            found = await load_user(store, PREFIX, user, "access_token", masker=self._masker)
            if found is not None:
                return Bearer(f"user:{user}", found[0])
        return self._shared


def parse_error(reply: UpstreamReply) -> Problem | None:
    if reply.status < 400:
        return None
    code = "upstream_auth_failed" if reply.status == 401 else "upstream_error"
    return Problem(code, f"toy answered HTTP {reply.status}", upstream=NAME,
                   upstream_status=reply.status)  # fmt: skip


# The onboarding: OAuth 2 authorization code (RFC 6749 §4.1).


def _approval(
    settings: ToyAuthSettings, site: Site, reply: UpstreamReply | None, fresh: Fresh
) -> Approval:
    query = urlencode({"response_type": "code", "client_id": settings.client_id,
                       "redirect_uri": site.callback_url, "state": fresh.nonce})  # fmt: skip
    return Approval(f"{site.base_url}{settings.authorize_path}?{query}", fresh.nonce, "")


def _returned(query: Mapping[str, str]) -> Returned:
    state, code = query.get("state", ""), query.get("code", "")
    if not PRINTABLE.match(state) or not PRINTABLE.match(code):
        raise InvalidRequest("state and code are required", upstream=NAME)
    return Returned(state, code)


def _token_call(
    settings: ToyAuthSettings, site: Site, pending: Pending, back: Returned
) -> TokenCall:
    basic = f"{settings.client_id}:{settings.client_secret.reveal()}".encode()
    body = urlencode({"grant_type": "authorization_code", "code": back.code,
                      "redirect_uri": site.callback_url}).encode()  # fmt: skip

    def build(fresh: Fresh) -> OutboundRequest:
        return OutboundRequest(
            method="POST",
            base_url=site.host_url,
            path=site.base_path + settings.token_path,
            headers=(
                ("Authorization", "Basic " + base64.b64encode(basic).decode()),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Accept", "application/json"),
            ),
            body=body,
        )

    return TokenCall(settings.token_path, settings.client_id, build)


def _credential(reply: UpstreamReply) -> Mapping[str, str]:
    if reply.status in (400, 401):
        raise UpstreamAuthFailed(f"toy refused the code (HTTP {reply.status})", upstream=NAME)
    try:
        token = json.loads(reply.body or b"{}").get("access_token")
    except (ValueError, AttributeError):
        token = None
    if reply.status != 200 or not isinstance(token, str) or not token:
        raise UpstreamError(f"toy answered HTTP {reply.status} and no token", upstream=NAME)
    return {"access_token": token}  # the routes remember it (the last value) for masking


SPEC = UpstreamSpec(
    name=NAME,
    parse_auth=parse_auth,
    build_auth=ToyAuth,
    parse_error=parse_error,
    onboarding=Onboarding(
        title="Toy",
        store_prefix=PREFIX,
        approval=_approval,
        returned=_returned,
        token_call=_token_call,
        credential=_credential,
    ),
)
