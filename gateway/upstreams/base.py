"""What one upstream module provides, and the credential flow the driver runs.

An upstream module (``bizzstream.py``, ``beeswax.py``, ...) exposes an
:class:`UpstreamSpec`: how to read its ``auth`` config, how to build its
:class:`UpstreamAuth`, how to map its error replies, and its default quotas.

Credentials are a flow, in the manner of httpx's ``Auth.auth_flow``::

    credential = await auth.bind(user, store)   # per-user or shared; once per call
    credential.account                          # the quota key (docs/contract.md §2)
    credential.needs_body(request)              # the signature covers it, or a replay needs it
    flow = credential.flow(request)
    request = await anext(flow)                 # signed (a login first, if need be)
    reply = await send(request)                 # a prefix of its body read when
                                                # credential.requires_reply_body(status)
    request = await flow.asend(reply)           # StopAsyncIteration: the reply is final;
    reply = await send(request)                 # a request: the upstream provably refused,
    await flow.asend(reply)                     # the flow renewed and signed again (fresh nonce)

A flow keeps its per-call state (the credential it used, so a renewal can tell
whether another call renewed it already) in its own local variables. It yields
a second, renewed request at most once; when it judges a reply a rejection it
cannot (or may no longer) renew, it raises :class:`CredentialRejected` instead.
The driver (``server/driver.py``) enforces the replay rule itself, whatever the
flow does: one replay at most, never of a streamed body.

What an auth does beyond signing (a login call, a token grant, the fleet's
shared sessions, reporting a renewal) goes through the :class:`AuthIO` it is
built with, once, at start-up: this package never imports aiohttp. Every login
or renewal that reaches the upstream is reported once through
``io.renewal(ok)`` (``gateway_auth_renewals_total{result="ok"|"error"}``); a
renewal that adopted another replica's new session instead through
``io.joined()`` (``result="joined"``).

Upstream sessions (a Beeswax cookie jar, a StreamOne session, an OAuth 2
client-credentials token) may be shared by every replica through ``io.fleet``
(:class:`SessionFleet`, ``server/shared_sessions.py``: Redis, single-flight
across replicas). Without it each process keeps its own.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from gateway.config_reader import Section
from gateway.core.messages import Headers, OutboundRequest, UpstreamReply
from gateway.core.problem import Problem
from gateway.core.secrets import SecretMasker
from gateway.errors import UpstreamError

if TYPE_CHECKING:  # onboarding.py imports this module
    from gateway.upstreams.onboarding import Onboarding

Sender = Callable[[OutboundRequest], Awaitable[UpstreamReply]]
RenewalResult = Literal["ok", "error", "joined"]


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

    async def take(self, key: str) -> bytes | None:
        """The value, deleted in the same step (atomic: of concurrent takes of one
        key, one gets it); None when absent or expired."""
        ...


def _no_sender(request: OutboundRequest) -> Awaitable[UpstreamReply]:
    raise UpstreamError("this auth was built without a sender: it cannot log in")


def _unreported(result: RenewalResult) -> None:
    return None


@dataclass(frozen=True, slots=True)
class AuthIO:
    """What an auth may do besides signing, given once when it is built
    (``server/auth_io.py``): ``send`` an exchange of its own (a login, a token
    grant) to the upstream, share sessions through the ``fleet`` (None: per
    process), ``report`` each renewal (``gateway_auth_renewals_total`` and a
    trace event), and ``masker.remember`` every secret it obtains at run time
    (the app's :class:`~gateway.core.secrets.SecretMasker`: masked in logs and
    error bodies; a private one when built without an app)."""

    upstream: str
    send: Sender = _no_sender
    fleet: SessionFleet | None = None
    report: Callable[[RenewalResult], None] = _unreported
    masker: SecretMasker = field(default_factory=SecretMasker)

    def renewal(self, ok: bool) -> None:
        """Report one login or renewal that reached the upstream."""
        self.report("ok" if ok else "error")

    def joined(self) -> None:
        """Report a renewal that adopted another replica's login instead."""
        self.report("joined")


class CredentialRejected(Exception):
    """Raised by a flow: the upstream refused this call's credentials and no
    (further) replay follows. The driver answers ``upstream_auth_failed``."""


# Yields the signed request, receives its reply; may yield one renewed request.
Flow = AsyncGenerator[OutboundRequest, UpstreamReply]


class Credential(Protocol):
    """The credentials bound to one call (per-user or shared)."""

    @property
    def account(self) -> str:
        """The quota key: the upstream account whose credentials make this call."""
        ...

    def needs_body(self, request: OutboundRequest) -> bool:
        """True when the flow must see the body (it is signed) or may replay it:
        the proxy then buffers it. A streamed body is never replayed."""
        ...

    def requires_reply_body(self, status: int) -> bool:
        """True when the flow needs the reply body to judge a reply of ``status``
        (the driver reads a bounded prefix, ``MAX_ERROR_BODY``)."""
        ...

    def flow(self, request: OutboundRequest) -> Flow:
        """Sign ``request``, judge its reply, renew and sign again at most once."""
        ...


class UpstreamAuth(Protocol):
    async def bind(self, user: str | None, store: KeyValueStore | None) -> Credential:
        """This call's credentials: ``user``'s own (X-Gateway-User; from the config,
        or the token ``store``), else the shared ones."""
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


def no_body(request: OutboundRequest) -> bool:
    return False


@dataclass(frozen=True)
class UpstreamSpec:
    name: str
    # Reads upstreams.<name>.auth into frozen settings (raises ConfigError naming the key).
    parse_auth: Callable[[Section], Any]
    # Builds the runtime auth from those settings and its I/O (once, at start-up).
    build_auth: Callable[[Any, AuthIO], UpstreamAuth]
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
    # Refuses (raises InvalidRequest) a call the upstream must never get; before
    # quota and before the credentials are bound (which may read the token store).
    check_request: Callable[[OutboundRequest], None] = no_check
    # True when check_request must see the call's body (BuzzStream: a form's
    # parameters): the proxy reads it first. Otherwise the check sees the call
    # without its body, and whether the body is read (signed, replayable) is the
    # bound credential's needs_body.
    check_needs_body: Callable[[OutboundRequest], bool] = no_body
    # 3-legged onboarding (users connect their own account): served by the generic
    # /oauth/<name>/start|callback routes (gateway/upstreams/onboarding.py). None: none.
    onboarding: Onboarding | None = None
