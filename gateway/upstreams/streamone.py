"""StreamOne platform API v3: HMAC-SHA1 signed query parameters.

``POST /streamone/{command}/{action}`` goes to ``<base>/api/{command}/{action}``
(``map_path``). :meth:`SignedQueryAuth.prepare` builds the call once and signs
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

from gateway.config_reader import Secret, Section
from gateway.core.messages import OutboundRequest, UpstreamReply, header_drop
from gateway.core.secrets import remember_secret
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
from gateway.upstreams.base import CallContext, UpstreamSpec
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
    auth_type: str
    actor_id: str
    psk: Secret
    session: SessionSettings | None = None


@dataclass(frozen=True)
class StreamOneAuthSettings:
    auth_type: str
    actor_id: str
    psk: Secret
    session: SessionSettings | None = None
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
    shared = _parse_actor(section)
    section.done()
    return StreamOneAuthSettings(
        shared.auth_type, shared.actor_id, shared.psk, shared.session, users
    )


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


class SignedQueryAuth:
    def __init__(
        self, settings: StreamOneAuthSettings, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self._clock = clock

        def state(a: StreamOneActorSettings) -> ActorState:
            return ActorState(Actor(a.auth_type, a.actor_id), a.psk, a.session, Backoff())

        self._shared = state(
            StreamOneActorSettings(
                settings.auth_type, settings.actor_id, settings.psk, settings.session
            )
        )
        self._users = {user: state(actor) for user, actor in settings.users.items()}

    def state(self, ctx: CallContext) -> ActorState:
        if isinstance(ctx.credential, ActorState):
            return ctx.credential
        return self._users.get(ctx.user or "", self._shared)

    async def bind(self, ctx: CallContext) -> None:
        ctx.credential = self.state(ctx)

    def needs_body(self, request: OutboundRequest) -> bool:
        return True  # the arguments are signed (and converted from JSON)

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

    async def prepare(self, request: OutboundRequest, ctx: CallContext) -> OutboundRequest:
        state = self.state(ctx)
        try:
            body = arguments_body(request)
            caller = caller_parameters(request.query)
        except UnusableArguments as exc:
            raise InvalidRequest(str(exc), upstream=NAME) from None
        ctx.account = state.account
        if state.session_settings is not None:
            root = api_root(request.path)
            if root is None:
                raise InvalidRequest(
                    "a StreamOne session call is /streamone/{command}/{action}", upstream=NAME
                )
            ctx.notes["base_url"] = request.base_url
            ctx.notes["api_root"] = root
            await fleet.sync(state, ctx, self._clock)
            session = state.session
            left = session.expires - self._clock() if session else 0.0
            if session is None or left < state.session_settings.renew_before:
                await self._login_once(state, ctx, state.generation)
        ctx.stale = state.generation
        return self.sign(state, request, caller, body, state.session)

    def observe(self, reply: UpstreamReply, ctx: CallContext) -> None:
        state = self.state(ctx)
        if state.session is not None and ctx.stale == state.generation:
            left = session_timeout(reply)
            if left is not None:
                state.session.expires = self._clock() + left
                fleet.publish(state, ctx, self._clock)

    def wants_body(self, status: int) -> bool:
        return status == 200  # status 282 hides in a 200

    def rejected(self, reply: UpstreamReply, ctx: CallContext) -> bool:
        if self.state(ctx).session_settings is None:
            return False
        return parse_envelope(reply).status == SESSION_NOT_FOUND

    async def renew(self, ctx: CallContext) -> None:
        ctx.notes[fleet.REJECTED] = True  # the fleet must not hand back the same session
        try:
            await self._login_once(self.state(ctx), ctx, ctx.stale)
        finally:
            ctx.notes.pop(fleet.REJECTED, None)
        ctx.renewed = True

    def account(self, ctx: CallContext) -> str:
        return self.state(ctx).account

    async def _login_once(self, state: ActorState, ctx: CallContext, stale: object) -> None:
        await state.flight.renew(stale, lambda: state.generation, lambda: self._login(state, ctx))

    async def _call(
        self, state: ActorState, ctx: CallContext, action: str, args: list[tuple[str, str]]
    ) -> tuple[int | None, object]:
        """One session action, signed by the application itself (no session)."""
        assert ctx.send is not None
        request = OutboundRequest(
            method="POST",
            base_url=str(ctx.notes["base_url"]),
            path=f"{ctx.notes['api_root']}/{action}",
            headers=(("Accept", "application/json"),),
        )
        reply = await ctx.send(self.sign(state, request, [], encode_form(args), None))
        envelope = parse_envelope(reply)
        return envelope.status, envelope.body

    async def _login(self, state: ActorState, ctx: CallContext) -> None:
        if ctx.fleet is None:
            await self._login_here(state, ctx)
        else:
            await fleet.login(state, ctx, lambda: self._login_here(state, ctx), self._clock)

    async def _login_here(self, state: ActorState, ctx: CallContext) -> None:
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
                state, ctx, "session/initialize",
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
            status, body = await self._call(state, ctx, "session/create", args)
            session = session_from_create(body, self._clock()) if status == 0 else None
            if session is None:
                raise UpstreamAuthFailed(
                    f"StreamOne refused the session login (status {status})", upstream=NAME
                )
        except GatewayError:
            ctx.renewal(False)
            state.backoff.fail(self._clock(), "refused")
            raise
        remember_secret(session.key.reveal())  # masked in logs and error bodies
        state.session = session
        state.generation += 1
        state.backoff.succeed()
        ctx.renewal(True)


SPEC = UpstreamSpec(
    name=NAME,
    parse_auth=parse_auth,
    build_auth=SignedQueryAuth,
    parse_error=parse_error,
    errors_in_200=True,
    map_path=lambda sub: "/api" + sub,
)
