"""What one upstream module provides, and the auth interface the driver calls.

An upstream module (``bizzstream.py``, ``beeswax.py``, ...) exposes an
:class:`UpstreamSpec`: how to read its ``auth`` config, how to build its
:class:`UpstreamAuth`, how to map its error replies, and its default quotas.

The auth interface follows httpx's ``Auth.auth_flow`` in spirit, cut to what the
driver loop in ``server/driver.py`` needs::

    await auth.bind(ctx)                           # per-user or shared credentials
    key = auth.account(ctx)                        # the quota key (docs/contract.md §2)
    request = await auth.prepare(request, ctx)     # attach credentials / sign
    reply = await send(request)
    auth.observe(reply, ctx)                       # e.g. store every Set-Cookie
    if auth.rejected(reply):                       # the upstream provably refused
        await auth.renew(ctx)                      # single-flight, against ctx.stale
        request = await auth.prepare(original, ctx)  # signed again: fresh nonce
        reply = await send(request)                # replayed once, never more

Every login or renewal that reaches the upstream is reported once through
``ctx.renewal(ok)`` (the driver turns it into ``gateway_auth_renewals_total``);
a renewal that adopted another replica's new session instead is reported
through ``ctx.joined()`` (``result="joined"``).

Upstream sessions (a Beeswax cookie jar, a StreamOne session, an OAuth 2
client-credentials token) may be shared by every replica through
``ctx.fleet`` (:class:`SessionFleet`, ``server/shared_sessions.py``: Redis,
single-flight across replicas). Without it each process keeps its own.

I/O that an auth needs (a login call, a token grant) goes through the injected
:class:`Sender`, so this package never imports aiohttp.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gateway.config_reader import Section
from gateway.core.messages import Headers, OutboundRequest, UpstreamReply
from gateway.core.problem import Problem

if TYPE_CHECKING:  # onboarding.py imports this module
    from gateway.upstreams.onboarding import Onboarding

Sender = Callable[[OutboundRequest], Awaitable[UpstreamReply]]


@dataclass(frozen=True)
class SharedSession:
    """One upstream session as the fleet shares it: ``id`` is unique per login
    (so "the session that was rejected" is named exactly), ``data`` is the
    auth's own JSON-able state (cookies, session id and key, a token)."""

    id: str
    data: Mapping[str, Any]

    def __repr__(self) -> str:  # data holds credentials
        return f"SharedSession(id={self.id!r})"


Login = Callable[[], Awaitable[tuple[dict[str, Any], float | None]]]


class SessionFleet(Protocol):
    """Upstream sessions shared by every gateway replica (``docs/operations.md``,
    Running a fleet). ``key`` names one session: the upstream and its account."""

    async def load(self, upstream: str, key: str) -> SharedSession | None:
        """The fleet's current session, if any (None also when Redis fails)."""
        ...

    async def renew(
        self,
        upstream: str,
        key: str,
        fresh: Callable[[SharedSession | None], bool],
        login: Login,
    ) -> tuple[SharedSession, bool]:
        """A session for which ``fresh`` holds: the fleet's if it already is
        (True: joined), else after one replica's ``login`` (single-flight across
        replicas; its ``(data, ttl)`` is stored). Waiting for another replica's
        login is bounded; then an ``upstream_unavailable`` error."""
        ...

    def publish(self, upstream: str, key: str, session: SharedSession, ttl: float | None) -> None:
        """Store an update of the same login (rotated cookies, a later expiry),
        in the background, unless another login replaced it meanwhile."""
        ...


class KeyValueStore(Protocol):
    """Shared state (Redis when configured, memory otherwise), e.g. 3-legged tokens."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...


@dataclass
class CallContext:
    """Per-call facts an auth may use. ``account`` is filled in by ``prepare``."""

    upstream: str
    user: str | None  # X-Gateway-User, if sent
    account: str = ""  # the upstream account whose credentials sign this call
    send: Sender | None = None  # for logins and token grants
    store: KeyValueStore | None = None
    stale: Any = None  # what prepare() used, so renew() can tell if it is already renewed
    renewed: bool = False
    notes: dict[str, Any] = field(default_factory=dict)
    credential: Any = None  # what bind() chose for this call (per-user or shared)
    on_renewal: Callable[[str], None] | None = None  # called with "ok" | "error" | "joined"
    fleet: SessionFleet | None = None  # sessions shared by every replica (Redis)

    def renewal(self, ok: bool) -> None:
        """Report one login or renewal that reached the upstream (metrics)."""
        if self.on_renewal is not None:
            self.on_renewal("ok" if ok else "error")

    def joined(self) -> None:
        """Report a renewal that adopted another replica's login instead (metrics)."""
        if self.on_renewal is not None:
            self.on_renewal("joined")


class UpstreamAuth(Protocol):
    async def bind(self, ctx: CallContext) -> None:
        """Choose this call's credentials (X-Gateway-User's own, else the shared
        ones) into ``ctx.credential``; may read ``ctx.store``. Called once per
        call, before ``account()``."""
        ...

    def needs_body(self, request: OutboundRequest) -> bool:
        """True when prepare() must see the body (signing) or a replay may need it."""
        ...

    async def prepare(self, request: OutboundRequest, ctx: CallContext) -> OutboundRequest: ...

    def observe(self, reply: UpstreamReply, ctx: CallContext) -> None: ...

    def wants_body(self, status: int) -> bool:
        """True when rejected() needs the reply body for this status."""
        ...

    def rejected(self, reply: UpstreamReply, ctx: CallContext) -> bool: ...

    async def renew(self, ctx: CallContext) -> None: ...

    def account(self, ctx: CallContext) -> str:
        """The quota key: the upstream account whose credentials make this call."""
        ...


@dataclass(frozen=True)
class LocalAnswer:
    """A reply the gateway gives itself instead of calling the upstream (Beeswax:
    an SDK's own login and logout). Never carries a cookie."""

    status: int
    body: bytes
    content_type: str = "application/json"


def same_path(sub: str) -> str:
    return sub


def no_local_answer(settings: Any, request: OutboundRequest) -> LocalAnswer | None:
    return None


def no_headers(reply: UpstreamReply) -> Headers:
    return ()


def no_check(request: OutboundRequest) -> None:
    return None


@dataclass(frozen=True)
class UpstreamSpec:
    name: str
    # Reads upstreams.<name>.auth into frozen settings (raises ConfigError naming the key).
    parse_auth: Callable[[Section], Any]
    # Builds the runtime auth from those settings.
    build_auth: Callable[[Any], UpstreamAuth]
    # Maps an error reply to a problem; None means "not an error" (2xx pass-through).
    parse_error: Callable[[UpstreamReply], Problem | None]
    # True when errors hide inside HTTP 200 replies (the body must be read).
    errors_in_200: bool = False
    # True when its JSON success bodies name resources by absolute URLs under its
    # base URL (BuzzStream URIs, Beeswax 2.0 pages): rewritten to the gateway
    # (core/links.py).
    links_in_body: bool = False
    # Default rate-limit policies, as config mappings (see docs/ratelimits.md).
    default_limits: tuple[Mapping[str, Any], ...] = ()
    # Maps the caller's safe sub-path to the path below the base URL (StreamOne: /api).
    map_path: Callable[[str], str] = same_path
    # Extra reply headers for a successful, read reply (Beeswax: Gateway-Partial-Failure).
    success_headers: Callable[[UpstreamReply], Headers] = no_headers
    # A call answered by the gateway itself, before credentials, quota or any I/O
    # (called with the auth settings and the outbound request; may raise a
    # GatewayError to refuse it). None: proxy it.
    answer_locally: Callable[[Any, OutboundRequest], LocalAnswer | None] = no_local_answer
    # Refuses (raises InvalidRequest) a call the upstream must never get, with
    # the body read when the auth signs it; before credentials and quota.
    check_request: Callable[[OutboundRequest], None] = no_check
    # 3-legged onboarding (users connect their own account): served by the generic
    # /oauth/<name>/start|callback routes (gateway/upstreams/onboarding.py). None: none.
    onboarding: Onboarding | None = None
