"""StreamOne platform API v3: HMAC-SHA1 signed query parameters.

``POST /streamone/{command}/{action}`` goes to ``<base>/api/{command}/{action}``
(``map_path``). :meth:`ActorCredential.flow` builds the call once and signs
exactly the bytes it sends (docs/upstreams.md § streamone, Auth):

- the arguments: a form body or a JSON object (lists comma-joined, booleans
  ``1``/``0``, null empty), written again as the official PHP SDK writes them
  (``http_build_query``: space as ``+``, ``~`` as ``%7E``);
- the query: ``api=3``, ``format=json``, the caller's ``account``/``customer``/
  ``timezone``, the actor and a fresh ``timestamp``, sorted, encoded the same
  way, then ``signature``.

Anything unusable (another query parameter, a JSON array, a nested object, an
unknown body type) is refused with ``invalid_request``.

Actors: ``user`` or ``application``. An application may log a user in
(``auth.session``, :mod:`gateway.upstreams.streamone_session`); such a session
is renewed single-flight before ``sessiontimeout`` runs out or on status 282,
and a 282 call is replayed once. The login proof is the official SDK's
(:mod:`gateway.core.streamone_password`), with ``v2hash`` when
``session/initialize`` asks for it. The session calls go to the same API root as
the call itself: ``<base path>/api/session/...`` (:func:`api_root`), so a call
of a session actor must have the contract's shape (docs/contract.md §1), ``{command}/{action}``.
With Redis, every replica shares each session
(:mod:`gateway.upstreams.streamone_fleet`): one login for the fleet.
``auth.users.<X-Gateway-User>`` may name another actor. The quota key is the
actor (docs/contract.md §2).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from gateway.config_reader import Secret, Section, extend
from gateway.core.messages import OutboundRequest, UpstreamReply, header_drop
from gateway.core.streamone_password import UnsupportedSalt, session_response, v2_hash
from gateway.core.streamone_signing import (
    Actor,
    UnusableArguments,
    call_parameters,
    caller_parameters,
    encode_form,
    encode_query,
    form_pairs,
    json_arguments,
    session_key,
    signed_query,
)
from gateway.errors import ConfigError, GatewayError, InvalidRequest, UpstreamAuthFailed
from gateway.upstreams import streamone_fleet as fleet
from gateway.upstreams.base import (
    AuthIO,
    CredentialRejected,
    Flow,
    KeyValueStore,
    UpstreamSpec,
)
from gateway.upstreams.renewal import Backoff, SingleFlight
from gateway.upstreams.streamone_errors import parse_error
from gateway.upstreams.streamone_session import (
    SESSION_NOT_FOUND,
    LiveSession,
    SessionSettings,
    api_root,
    challenge_from_initialize,
    parse_envelope,
    session_from_create,
    session_timeout,
)

NAME = "streamone"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class StreamOneActorSettings:
    """An actor: a user's (``auth.users.<user>``), or the shared one (``auth``'s own)."""

    auth_type: str
    actor_id: str
    psk: Secret
    session: SessionSettings | None = None


@dataclass(frozen=True)
class StreamOneAuthSettings(StreamOneActorSettings):
    """The shared actor and each user's."""

    users: Mapping[str, StreamOneActorSettings] = field(default_factory=dict)


def _parse_actor(section: Section) -> StreamOneActorSettings:
    auth_type = section.choice("auth_type", ("user", "application"))
    session = None
    if section.has("session"):
        sub = section.section("session")
        if auth_type != "application":
            raise ConfigError(f"{sub.path}: sessions need auth_type application")
        session = SessionSettings(
            user=sub.text("user"),
            password=sub.secret("password"),
            userip=sub.text("userip", "127.0.0.1"),
            renew_before=sub.duration("renew_before", 60.0),
        )
        sub.done()
    else:
        section.raw("session")
    return StreamOneActorSettings(
        auth_type, section.text("actor_id"), section.secret("psk"), session
    )


def parse_auth(section: Section) -> StreamOneAuthSettings:
    users = section.each("users", _parse_actor)
    settings = extend(_parse_actor(section), StreamOneAuthSettings, users=users)
    section.done()
    return settings


@dataclass
class ActorState:
    """One actor's signing key and, for a session actor, its live session."""

    actor: Actor
    psk: Secret
    session_settings: SessionSettings | None
    backoff: Backoff
    session: LiveSession | None = None
    generation: int = 0
    flight: SingleFlight = field(default_factory=SingleFlight)
    shared_id: str | None = None  # the fleet's login this session is (Redis)
    synced: float = float("-inf")  # the last look at the fleet's session
    published: float = 0.0  # the expiry last shared with the fleet

    @property
    def account(self) -> str:
        key = f"{self.actor.auth_type}:{self.actor.actor_id}"
        if self.session_settings is not None:
            key += f"/session:{self.session_settings.user}"
        return key


def arguments_body(request: OutboundRequest) -> bytes:
    """The form body to send, as the PHP SDK would write it: from a form body or
    a JSON object; any other body is refused."""
    body = request.body or b""
    if not body.strip():
        return b""
    kind = request.content_type
    if kind == FORM:
        return encode_form(form_pairs(body))
    if kind == "application/json" or kind.endswith("+json"):
        return encode_form(json_arguments(body))
    raise UnusableArguments("send the arguments as a form body or a JSON object")


@dataclass(frozen=True, slots=True, eq=False)
class ActorCredential:
    """One actor (and its session, if any), bound to the calls it signs."""

    auth: SignedQueryAuth
    state: ActorState

    @property
    def account(self) -> str:
        return self.state.account

    def needs_body(self, request: OutboundRequest) -> bool:
        return True  # the arguments are signed (and converted from JSON)

    def requires_reply_body(self, status: int) -> bool:
        return status == 200  # status 282 hides in a 200

    async def flow(self, request: OutboundRequest) -> Flow:
        auth, state = self.auth, self.state
        try:
            body = arguments_body(request)
            caller = caller_parameters(request.query)
        except UnusableArguments as exc:
            raise InvalidRequest(str(exc), upstream=NAME) from None
        renewed = False
        while True:
            used = await auth.ready(state, request)
            reply = yield auth.sign(state, request, caller, body, state.session)
            auth.observe(state, used, reply)
            if state.session_settings is None or not session_gone(reply):
                return
            if renewed or request.streamed_body:
                raise CredentialRejected
            await auth.login_once(state, request, used, after_282=True)
            renewed = True


def session_gone(reply: UpstreamReply) -> bool:
    """Status 282 (``SESSION_NOT_FOUND``): log in again and replay once."""
    return parse_envelope(reply).status == SESSION_NOT_FOUND


class SignedQueryAuth:
    def __init__(
        self,
        settings: StreamOneAuthSettings,
        io: AuthIO | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.io = io or AuthIO(NAME)
        self._clock = clock

        def credential(a: StreamOneActorSettings) -> ActorCredential:
            state = ActorState(Actor(a.auth_type, a.actor_id), a.psk, a.session, Backoff())
            return ActorCredential(self, state)

        self._shared = credential(settings)
        self._users = {user: credential(actor) for user, actor in settings.users.items()}

    async def bind(self, user: str | None, store: KeyValueStore | None) -> ActorCredential:
        return self._users.get(user or "", self._shared)

    def sign(
        self,
        state: ActorState,
        request: OutboundRequest,
        caller: list[tuple[str, str]],
        body: bytes,
        session: LiveSession | None,
    ) -> OutboundRequest:
        """Build the query once, sign ``path?query&body``, append the signature."""
        params = call_parameters(
            state.actor, int(self._clock()), caller, session.id if session else None
        )
        key = state.psk.reveal()
        if session is not None:
            key = session_key(key, session.key.reveal())
        headers = header_drop(request.headers, ("Content-Length", "Content-Type"))
        if body:
            headers = (*headers, ("Content-Type", FORM))
        return replace(
            request,
            query=signed_query(request.path, encode_query(params), body, key),
            headers=headers,
            body=body,
            streamed_body=False,
        )

    async def ready(self, state: ActorState, request: OutboundRequest) -> int:
        """A session actor's live session (logged in, or renewed ahead of its
        expiry); returns the session generation this attempt signs with."""
        if state.session_settings is not None:
            if api_root(request.path) is None:
                raise InvalidRequest(
                    "a StreamOne session call is /streamone/{command}/{action}", upstream=NAME
                )
            await fleet.sync(state, self.io, self._clock)
            session = state.session
            left = session.expires - self._clock() if session else 0.0
            if session is None or left < state.session_settings.renew_before:
                await self.login_once(state, request, state.generation)
        return state.generation

    def observe(self, state: ActorState, used: int, reply: UpstreamReply) -> None:
        """``header.sessiontimeout`` keeps the expiry of the session ``used`` current."""
        if state.session is not None and used == state.generation:
            left = session_timeout(reply)
            if left is not None:
                state.session.expires = self._clock() + left
                fleet.publish(state, self.io, self._clock)

    async def login_once(
        self, state: ActorState, call: OutboundRequest, stale: int, after_282: bool = False
    ) -> None:
        """Log in unless another call already did since ``stale`` (single-flight).
        The session calls go to the API root of ``call``."""
        await state.flight.renew(
            stale, lambda: state.generation, lambda: self._login(state, call, after_282)
        )

    async def _call(
        self,
        state: ActorState,
        call: OutboundRequest,
        action: str,
        args: list[tuple[str, str]],
    ) -> tuple[int | None, object]:
        """One session action, signed by the application itself (no session)."""
        request = OutboundRequest(
            method="POST",
            base_url=call.base_url,
            path=f"{api_root(call.path)}/{action}",
            headers=(("Accept", "application/json"),),
        )
        reply = await self.io.send(self.sign(state, request, [], encode_form(args), None))
        envelope = parse_envelope(reply)
        return envelope.status, envelope.body

    async def _login(self, state: ActorState, call: OutboundRequest, after_282: bool) -> None:
        if self.io.fleet is None:
            await self._login_here(state, call)
        else:
            login = lambda: self._login_here(state, call)  # noqa: E731
            await fleet.login(state, self.io, login, self._clock, after_282)

    async def _login_here(self, state: ActorState, call: OutboundRequest) -> None:
        settings = state.session_settings
        assert settings is not None
        wait = state.backoff.remaining(self._clock())
        if wait > 0:
            raise UpstreamAuthFailed(
                "the StreamOne session login failed moments ago; retried after a pause",
                upstream=NAME,
                retry_after=wait,
            )
        try:
            status, body = await self._call(
                state, call, "session/initialize",
                [("user", settings.user), ("userip", settings.userip)],
            )  # fmt: skip
            found = challenge_from_initialize(body) if status == 0 else None
            if found is None:
                raise UpstreamAuthFailed(
                    f"StreamOne session/initialize answered status {status}", upstream=NAME
                )
            challenge, salt, needs_v2 = found
            password = settings.password.reveal()
            try:  # bcrypt is slow on purpose: off the event loop
                proof = await asyncio.to_thread(session_response, password, salt, challenge)
            except UnsupportedSalt as exc:
                raise UpstreamAuthFailed(
                    f"StreamOne session/initialize sent a salt the gateway cannot use: {exc}",
                    upstream=NAME,
                ) from None
            args = [("challenge", challenge), ("response", proof)]
            if needs_v2:  # the platform still holds the v2 hash; it converts it now
                args.append(("v2hash", v2_hash(password)))
            status, body = await self._call(state, call, "session/create", args)
            session = session_from_create(body, self._clock()) if status == 0 else None
            if session is None:
                raise UpstreamAuthFailed(
                    f"StreamOne refused the session login (status {status})", upstream=NAME
                )
        except GatewayError:
            self.io.renewal(False)
            state.backoff.fail(self._clock(), "refused")
            raise
        self.io.masker.remember(session.key.reveal())  # masked in logs and error bodies
        state.session = session
        state.generation += 1
        state.backoff.succeed()
        self.io.renewal(True)


SPEC = UpstreamSpec(
    name=NAME,
    parse_auth=parse_auth,
    build_auth=SignedQueryAuth,
    parse_error=parse_error,
    errors_in_200=True,
    map_path=lambda sub: "/api" + sub,
)
