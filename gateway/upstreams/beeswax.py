"""Beeswax "Buzz" API: one session cookie jar per tenant, renewed single-flight.

Auth (docs/upstreams.md § beeswax):

- Log in with ``POST <login_path>`` and JSON ``{"email", "password",
  "keep_logged_in"}``; keep every ``Set-Cookie`` of every reply in the tenant's
  jar (:mod:`gateway.upstreams.beeswax_cookies`) and send the jar on each call.
- On a 401, log in again single-flight: the calls that met the same expired
  session wait for one login and are each replayed once. A 401 can also mean
  "no rights" (docs/upstreams.md), so a 401 only logs in again when it can mean
  an ended session, and never more often than ``min_login_interval``
  (:meth:`SessionCookieAuth.rejected`); otherwise it is final
  (``upstream_auth_failed``, no replay) and cannot exhaust the login quota.
- A login answered 429 pauses logins for ``Retry-After`` (or a bounded
  exponential back-off); callers get ``rate_limited`` meanwhile. A refused
  password gives ``upstream_auth_failed`` and pauses logins the same way: it
  never loops.

The login path is a path on the tenant host (the base URL's origin), default
``/rest/authenticate``. The session is the gateway's: a caller's own login or
logout (what Beeswax SDKs send) is answered by the gateway itself, never
forwarded (:mod:`gateway.upstreams.beeswax_sdk`, the drop-in mode for SDKs);
any other call to the session paths is refused (``invalid_request``) before
anything is sent, and cookies are only ever taken from replies to calls the
gateway signed itself; otherwise a caller could log the shared jar in as
another account (session fixation).

Fleet: with Redis, every replica shares each login's jar (one login for the
fleet, single-flight across replicas; :mod:`gateway.upstreams.beeswax_fleet`).

Per-user credentials: ``auth.users.<X-Gateway-User>`` with its own email and
password gets its own jar. The quota key is the login email: the tenant
account whose session makes the call (docs/contract.md §2).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from gateway.config_reader import Secret, Section, extend
from gateway.core.errormap import parse_json, retry_after_seconds
from gateway.core.messages import OutboundRequest, UpstreamReply, header_all
from gateway.core.problem import Problem
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamProblem,
)
from gateway.upstreams import beeswax_fleet as fleet
from gateway.upstreams.base import (
    AuthIO,
    CredentialRejected,
    Flow,
    KeyValueStore,
    UpstreamSpec,
)
from gateway.upstreams.beeswax_cookies import CookieJar
from gateway.upstreams.beeswax_errors import parse_error, partial_failure_headers
from gateway.upstreams.beeswax_sdk import REFUSED, answer_locally, is_session_path
from gateway.upstreams.renewal import Backoff, SingleFlight

NAME = "beeswax"


@dataclass(frozen=True)
class BeeswaxLogin:
    """A login: a user's (``auth.users.<user>``), or the shared one (``auth``'s own)."""

    email: str
    password: Secret


@dataclass(frozen=True)
class BeeswaxAuthSettings(BeeswaxLogin):
    """The shared login, the upstream-wide login settings, and each user's login."""

    login_path: str = "/rest/authenticate"
    keep_logged_in: bool = True
    login_backoff_max: float = 60.0
    min_login_interval: float = 10.0
    users: Mapping[str, BeeswaxLogin] = field(default_factory=dict)


def _parse_login(section: Section) -> BeeswaxLogin:
    return BeeswaxLogin(email=section.text("email"), password=section.secret("password"))


def parse_auth(section: Section) -> BeeswaxAuthSettings:
    users = section.each("users", _parse_login)
    settings = extend(
        _parse_login(section),
        BeeswaxAuthSettings,
        login_path=section.text("login_path", "/rest/authenticate"),
        keep_logged_in=section.flag("keep_logged_in", True),
        login_backoff_max=section.duration("login_backoff_max", 60.0),
        min_login_interval=section.duration("min_login_interval", 10.0),
        users=users,
    )
    section.done()
    return settings


@dataclass
class TenantSession:
    """One login's session: its jar, a generation bumped by every login, its lock."""

    login: BeeswaxLogin
    jar: CookieJar
    backoff: Backoff
    generation: int = 0
    flight: SingleFlight = field(default_factory=SingleFlight)
    obtained_at: float = float("-inf")  # when the current session was logged in
    worked: bool = False  # the current session has had a reply other than 401
    relogin_at: float = float("-inf")  # the last login caused by a 401
    shared_id: str | None = None  # the fleet's login this jar holds (Redis)
    synced: float = float("-inf")  # the last look at the fleet's jar


@dataclass(frozen=True, slots=True, eq=False)
class TenantCredential:
    """One login's session, bound to the calls it signs."""

    auth: SessionCookieAuth
    session: TenantSession

    @property
    def account(self) -> str:
        return self.session.login.email

    def needs_body(self, request: OutboundRequest) -> bool:
        return True  # any call may meet an expired session and be replayed

    def requires_reply_body(self, status: int) -> bool:
        return False  # a 401 is judged by its status and the session's history

    async def flow(self, request: OutboundRequest) -> Flow:
        auth, session = self.auth, self.session
        if is_session_path(request.path, auth.settings.login_path):
            # answer_locally() took these before; this guard keeps the auth safe alone
            raise InvalidRequest(REFUSED, upstream=NAME)
        renewed = False
        while True:
            if session.generation == 0:
                await auth.login_once(session, request.base_url, stale=0)
            else:
                await fleet.sync(session, auth.io, auth.clock, auth.wall)
            used = session.generation  # a reply to an older session leaves the jar alone
            cookie = session.jar.header()
            reply = yield request.with_header("Cookie", cookie) if cookie else request
            auth.observe(session, used, reply)
            if not auth.rejected(session, used, reply):
                return
            if renewed or request.streamed_body:
                raise CredentialRejected
            await auth.login_once(session, request.base_url, stale=used, after_401=True)
            renewed = True


class SessionCookieAuth:
    def __init__(
        self,
        settings: BeeswaxAuthSettings,
        io: AuthIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.io = io or AuthIO(NAME)
        self.clock = clock
        self.wall = wall_clock

        def credential(login: BeeswaxLogin) -> TenantCredential:
            backoff = Backoff(cap=settings.login_backoff_max)
            return TenantCredential(
                self, TenantSession(login, CookieJar(wall_clock, masker=self.io.masker), backoff)
            )

        self._shared = credential(settings)
        self._users = {user: credential(login) for user, login in settings.users.items()}

    async def bind(self, user: str | None, store: KeyValueStore | None) -> TenantCredential:
        return self._users.get(user or "", self._shared)

    def observe(self, session: TenantSession, used: int, reply: UpstreamReply) -> None:
        """Keep every ``Set-Cookie`` of a reply to a call signed with the current
        session (``used``); a reply to a call made with an older session must not
        overwrite the cookies of the login that replaced it. Only replies to
        calls this auth signed (never to a session path) reach here."""
        if used == session.generation:
            if reply.status != 401 and reply.status < 500:
                session.worked = True
            rotated = header_all(reply.headers, "Set-Cookie")
            for header in rotated:
                session.jar.store(header)
            if rotated:
                fleet.publish(session, self.io, self.clock, self.wall)

    def rejected(self, session: TenantSession, used: int, reply: UpstreamReply) -> bool:
        """A 401 that calls for a new login (and one replay).

        A 401 met with an older session always does: another call has logged in
        since, so the renewal just replays. A 401 with the current session only
        when it can mean that the session ended: the session has worked for some
        call since its login, or is at least ``min_login_interval`` old; and no
        other 401 caused a login in the last ``min_login_interval``. Any other
        401 is final ("no rights": ``upstream_auth_failed``, no login, no
        replay), so an endpoint that always answers 401 costs at most one login
        per interval.
        """
        if reply.status != 401:
            return False
        if used != session.generation:
            return True
        now, interval = self.clock(), self.settings.min_login_interval
        if now - session.relogin_at < interval:
            return False
        return session.worked or now - session.obtained_at >= interval

    async def login_once(
        self, session: TenantSession, base_url: str, stale: int, after_401: bool = False
    ) -> None:
        """Log in unless another call already did since ``stale`` (single-flight)."""
        await session.flight.renew(
            stale, lambda: session.generation, lambda: self._login(session, base_url, after_401)
        )

    def _paused(self, session: TenantSession, wait: float) -> GatewayError:
        if session.backoff.reason == "throttled":
            return UpstreamProblem(
                Problem(
                    code="rate_limited",
                    detail="beeswax throttles the gateway's logins; calls resume after a pause",
                    upstream=NAME,
                    upstream_status=429,
                    retry_after=wait,
                    source="upstream",
                )
            )
        if session.backoff.reason == "refused":
            return UpstreamAuthFailed(
                "beeswax refused the gateway's login (check the configured email and password)",
                upstream=NAME,
                retry_after=wait,
            )
        return UpstreamError("beeswax login failed; retried after a pause", upstream=NAME)

    def login_request(self, session: TenantSession, base_url: str) -> OutboundRequest:
        body = {
            "email": session.login.email,
            "password": session.login.password.reveal(),
            "keep_logged_in": self.settings.keep_logged_in,
        }
        return OutboundRequest(
            method="POST",
            base_url=base_url,
            path=self.settings.login_path,
            headers=(("Content-Type", "application/json"), ("Accept", "application/json")),
            body=json.dumps(body).encode("utf-8"),
        )

    async def _login(self, session: TenantSession, base_url: str, after_401: bool) -> None:
        if self.io.fleet is None:
            await self._login_here(session, base_url, after_401)
        else:
            login = lambda: self._login_here(session, base_url, after_401)  # noqa: E731
            await fleet.login(session, self.io, login, self.clock, self.wall)

    async def _login_here(self, session: TenantSession, base_url: str, after_401: bool) -> None:
        now = self.clock()
        wait = session.backoff.remaining(now)
        if wait > 0:
            raise self._paused(session, wait)
        try:
            reply = await self.io.send(self.login_request(session, base_url))
        except GatewayError:
            self.io.renewal(False)
            session.backoff.fail(self.clock(), "unreachable")
            raise
        body = parse_json(reply.body)
        ok = isinstance(body, dict) and body.get("success") in (True, "true")
        if reply.status == 200 and ok:
            session.jar.clear()
            for header in header_all(reply.headers, "Set-Cookie"):
                session.jar.store(header)
            session.generation += 1
            session.obtained_at, session.worked = self.clock(), False
            if after_401:
                session.relogin_at = session.obtained_at
            session.backoff.succeed()
            self.io.renewal(True)
            return
        self.io.renewal(False)
        if reply.status == 429:
            wait = session.backoff.fail(now, "throttled", retry_after_seconds(reply))
        elif reply.status in (200, 400, 401, 403, 406):
            wait = session.backoff.fail(now, "refused")
        else:
            wait = session.backoff.fail(now, "failed")
        raise self._paused(session, wait)


SPEC = UpstreamSpec(
    name=NAME,
    parse_auth=parse_auth,
    build_auth=SessionCookieAuth,
    parse_error=parse_error,
    errors_in_200=True,
    links_in_body=True,  # 2.0 lists link their pages: "next"/"previous" are URIs
    success_headers=partial_failure_headers,
    answer_locally=answer_locally,
    default_limits=(
        {"name": "report_queue", "match": "/rest/report_queue*", "limit": 1, "period": "1s",
         "margin": "100ms", "on_exceed": "delay", "max_delay": "10s"},
    ),
)  # fmt: skip
