"""One Beeswax session (the whole cookie jar) for every replica, through ``io.fleet``.

Hooks :class:`~gateway.upstreams.beeswax.SessionCookieAuth` calls when the
fleet is configured (Redis; ``docs/operations.md``, Running a fleet):

- :func:`login` wraps the auth's own login in the fleet's single-flight: a
  replica first adopts a session another replica logged in (``joined``), else
  it logs in and stores the jar for the others;
- :func:`publish` shares cookies a reply rotated (same login, same id);
- :func:`sync` adopts, at most every ``SYNC_INTERVAL``, what another replica
  published (rotated cookies, or a newer login).

The shared state is the jar's snapshot plus the login times (wall clock), so
the ``min_login_interval`` guard holds for the fleet, not only per process.
Its TTL is the jar's lifetime: the last cookie's expiry, or Beeswax's
documented 15-minute session when only session cookies are held.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gateway.upstreams.base import AuthIO, SharedSession

if TYPE_CHECKING:
    from gateway.upstreams.beeswax import TenantSession

NAME = "beeswax"
SESSION_TTL = 900.0  # upstreams.md: a session lasts 15 minutes by default
SYNC_INTERVAL = 1.0  # seconds between two looks at the fleet's jar, per replica

Clock = Callable[[], float]


def state_of(session: TenantSession, clock: Clock, wall: Clock) -> dict[str, Any]:
    offset = wall() - clock()  # monotonic -> wall clock
    relogin = session.relogin_at + offset if session.relogin_at != float("-inf") else None
    return {
        "cookies": session.jar.snapshot(),
        "login_at": session.obtained_at + offset,
        "relogin_at": relogin,
    }


def adopt(session: TenantSession, shared: SharedSession, clock: Clock, wall: Clock) -> None:
    """Take another replica's login: its jar, its login times; a new generation."""
    offset = clock() - wall()  # wall clock -> monotonic
    session.jar.restore(shared.data.get("cookies"))
    login_at, relogin_at = shared.data.get("login_at"), shared.data.get("relogin_at")
    if isinstance(login_at, int | float):
        session.obtained_at = float(login_at) + offset
    if isinstance(relogin_at, int | float):
        session.relogin_at = float(relogin_at) + offset
    session.shared_id = shared.id
    session.generation += 1
    session.worked = False
    session.backoff.succeed()


async def login(
    session: TenantSession,
    io: AuthIO,
    login_here: Callable[[], Awaitable[None]],
    clock: Clock,
    wall: Clock,
) -> None:
    assert io.fleet is not None
    stale = session.shared_id

    async def log_in() -> tuple[dict[str, Any], float | None]:
        await login_here()
        return state_of(session, clock, wall), session.jar.lifetime(SESSION_TTL)

    shared, joined = await io.fleet.renew(
        NAME, session.login.email, lambda rec: rec is not None and rec.id != stale, log_in
    )
    session.synced = clock()
    if joined:
        adopt(session, shared, clock, wall)
        io.joined()
    else:
        session.shared_id = shared.id


def publish(session: TenantSession, io: AuthIO, clock: Clock, wall: Clock) -> None:
    if io.fleet is None or session.shared_id is None:
        return
    shared = SharedSession(session.shared_id, state_of(session, clock, wall))
    io.fleet.publish(NAME, session.login.email, shared, session.jar.lifetime(SESSION_TTL))


async def sync(session: TenantSession, io: AuthIO, clock: Clock, wall: Clock) -> None:
    """Adopt what another replica published since the last look (once per interval)."""
    if io.fleet is None or clock() - session.synced < SYNC_INTERVAL:
        return
    session.synced = clock()  # concurrent calls go on with the jar they have
    shared = await io.fleet.load(NAME, session.login.email)
    if shared is None:
        return
    if shared.id != session.shared_id:
        adopt(session, shared, clock, wall)
    else:
        session.jar.restore(shared.data.get("cookies"))  # rotated by another replica
