"""One StreamOne session (id, key, expiry) for every replica, through ``io.fleet``.

Hooks :class:`~gateway.upstreams.streamone.SignedQueryAuth` calls when the
fleet is configured (Redis; ``docs/operations.md``, Running a fleet):

- :func:`login` wraps the session login in the fleet's single-flight. A
  session is *fresh* for the fleet when it has at least ``renew_before`` left
  and, after a 282 (``SESSION_NOT_FOUND``), when it is not the rejected one;
- :func:`publish` shares a later expiry (``header.sessiontimeout`` slides with
  use), at most every ``PUBLISH_STEP`` seconds of extension, so that no replica
  renews a session another one keeps alive;
- :func:`sync` adopts, at most every ``SYNC_INTERVAL``, the fleet's session.

Expiry times are wall-clock seconds (the auth's clock is ``time.time``), so they
travel between replicas as they are. The record's TTL is the time left.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gateway.config_reader import Secret
from gateway.core.secrets import SecretMasker
from gateway.upstreams.base import AuthIO, SharedSession
from gateway.upstreams.streamone_session import LiveSession

if TYPE_CHECKING:
    from gateway.upstreams.streamone import ActorState

NAME = "streamone"
SYNC_INTERVAL = 1.0
PUBLISH_STEP = 5.0

Clock = Callable[[], float]


def state_of(session: LiveSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "key": session.key.reveal(),
        "user": session.user,
        "expires": session.expires,
    }


def session_of(shared: SharedSession, masker: SecretMasker) -> LiveSession | None:
    """The fleet's session; its key remembered by ``masker`` (masked in logs)."""
    data = shared.data
    ident, key, user, expires = (data.get(k) for k in ("id", "key", "user", "expires"))
    if not isinstance(ident, str) or not isinstance(key, str):
        return None
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        return None
    masker.remember(key)
    return LiveSession(ident, Secret(key), str(user or ""), float(expires))


def adopt(state: ActorState, shared: SharedSession, session: LiveSession) -> None:
    state.session = session
    state.shared_id = shared.id
    state.published = session.expires
    state.generation += 1
    state.backoff.succeed()


async def login(
    state: ActorState,
    io: AuthIO,
    login_here: Callable[[], Awaitable[None]],
    clock: Clock,
    after_282: bool,
) -> None:
    assert io.fleet is not None and state.session_settings is not None
    renew_before = state.session_settings.renew_before
    rejected = state.shared_id if after_282 else None  # never hand the same session back

    def fresh(shared: SharedSession | None) -> bool:
        if shared is None or (rejected is not None and shared.id == rejected):
            return False
        session = session_of(shared, io.masker)
        return session is not None and session.expires - clock() >= renew_before

    async def log_in() -> tuple[dict[str, Any], float | None]:
        await login_here()
        assert state.session is not None
        return state_of(state.session), max(1.0, state.session.expires - clock())

    shared, joined = await io.fleet.renew(NAME, state.account, fresh, log_in)
    state.synced = clock()
    session = session_of(shared, io.masker)
    if joined and session is not None:
        adopt(state, shared, session)
        io.joined()
    else:
        state.shared_id = shared.id
        state.published = state.session.expires if state.session else 0.0


def publish(state: ActorState, io: AuthIO, clock: Clock) -> None:
    session = state.session
    if io.fleet is None or session is None or state.shared_id is None:
        return
    if session.expires - state.published < PUBLISH_STEP:
        return
    state.published = session.expires
    shared = SharedSession(state.shared_id, state_of(session))
    io.fleet.publish(NAME, state.account, shared, max(1.0, session.expires - clock()))


async def sync(state: ActorState, io: AuthIO, clock: Clock) -> None:
    """Adopt the fleet's session, or its later expiry, once per interval."""
    if io.fleet is None or state.session is None or clock() - state.synced < SYNC_INTERVAL:
        return
    state.synced = clock()
    shared = await io.fleet.load(NAME, state.account)
    session = session_of(shared, io.masker) if shared is not None else None
    if shared is None or session is None:
        return
    if shared.id != state.shared_id:
        adopt(state, shared, session)
    elif session.expires > state.session.expires:
        state.session.expires = session.expires
        state.published = max(state.published, session.expires)
