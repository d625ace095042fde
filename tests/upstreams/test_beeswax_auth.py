"""Beeswax session-cookie auth, driven by hand: the Sender is a small script, no network."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.config_reader import Secret, Section
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.errors import InvalidRequest, UpstreamAuthFailed, UpstreamProblem
from gateway.upstreams.base import CallContext
from gateway.upstreams.beeswax import (
    BeeswaxAuthSettings,
    BeeswaxLogin,
    SessionCookieAuth,
    parse_auth,
)
from gateway.upstreams.beeswax_cookies import CookieJar, parse_set_cookie

BASE = "http://bees.test"
OK = json.dumps({"success": "true", "message": "Cookie set successfully"}).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Upstream:
    """Answers logins like Beeswax: a fresh session cookie each time (or a scripted reply)."""

    def __init__(self, script: list[UpstreamReply] | None = None) -> None:
        self.logins: list[dict[str, object]] = []
        self.script = script or []

    async def send(self, request: OutboundRequest) -> UpstreamReply:
        assert request.base_url == BASE and request.path == "/rest/authenticate"
        self.logins.append(json.loads(request.body or b""))
        await asyncio.sleep(0)  # let concurrent callers pile up on the lock
        if self.script:
            return self.script.pop(0)
        n = len(self.logins)
        return UpstreamReply(
            200,
            (("Set-Cookie", f"k_buzz_cookie=s{n}; Path=/; HttpOnly"),
             ("Set-Cookie", f"k_buzz_remember=r{n}; Max-Age=86400; Path=/")),
            OK,
        )  # fmt: skip


def make(
    upstream: Upstream, clock: Clock | None = None, **kw: object
) -> tuple[SessionCookieAuth, Clock]:
    clock = clock or Clock()
    settings = BeeswaxAuthSettings(email="ops@example.com", password=Secret("pw"), **kw)  # type: ignore[arg-type]
    return SessionCookieAuth(settings, clock=clock, wall_clock=clock), clock


def ctx(upstream: Upstream, user: str | None = None) -> CallContext:
    return CallContext(upstream="beeswax", user=user, send=upstream.send)


REQUEST = OutboundRequest("GET", BASE, "/rest/advertiser", headers=(("Accept", "*/*"),))


async def test_first_call_logs_in_once_and_sends_the_jar() -> None:
    up = Upstream()
    auth, _ = make(up)
    c = ctx(up)
    await auth.bind(c)
    prepared = await auth.prepare(REQUEST, c)
    assert up.logins == [{"email": "ops@example.com", "password": "pw", "keep_logged_in": True}]
    assert prepared.header("Cookie") == "k_buzz_cookie=s1; k_buzz_remember=r1"
    assert auth.account(c) == c.account == "ops@example.com"
    await auth.prepare(REQUEST, ctx(up))
    assert len(up.logins) == 1


async def test_every_set_cookie_of_every_reply_is_kept() -> None:
    up = Upstream()
    auth, _ = make(up)
    c = ctx(up)
    await auth.prepare(REQUEST, c)
    auth.observe(UpstreamReply(200, (("Set-Cookie", "k_buzz_cookie=rotated; Path=/"),)), c)
    prepared = await auth.prepare(REQUEST, ctx(up))
    assert prepared.header("Cookie") == "k_buzz_cookie=rotated; k_buzz_remember=r1"


async def test_a_reply_to_an_older_session_does_not_overwrite_the_new_cookies() -> None:
    up = Upstream()
    auth, _ = make(up)
    old = ctx(up)
    await auth.prepare(REQUEST, old)
    fresh = ctx(up)
    await auth.prepare(REQUEST, fresh)
    await auth.renew(fresh)  # another call logged in again meanwhile
    auth.observe(UpstreamReply(200, (("Set-Cookie", "k_buzz_cookie=late; Path=/"),)), old)
    assert (await auth.prepare(REQUEST, ctx(up))).header("Cookie") == (
        "k_buzz_cookie=s2; k_buzz_remember=r2"
    )


async def test_concurrent_401s_cause_exactly_one_login_and_each_replays() -> None:
    up = Upstream()
    auth, _ = make(up)
    first = ctx(up)
    await auth.prepare(REQUEST, first)
    auth.observe(UpstreamReply(200), first)  # the session worked, then expired
    calls = [ctx(up) for _ in range(100)]
    for c in calls:
        await auth.prepare(REQUEST, c)
    rejected = UpstreamReply(401)
    assert all(auth.rejected(rejected, c) for c in calls)
    await asyncio.gather(*(auth.renew(c) for c in calls))
    assert len(up.logins) == 2  # the first login, then one renewal for all 100
    replays = [await auth.prepare(REQUEST, c) for c in calls]
    assert {r.header("Cookie") for r in replays} == {"k_buzz_cookie=s2; k_buzz_remember=r2"}


async def test_login_429_honours_retry_after_and_pauses_logins() -> None:
    up = Upstream([UpstreamReply(429, (("Retry-After", "17"),), b'{"success": false}')])
    auth, clock = make(up)
    with pytest.raises(UpstreamProblem) as caught:
        await auth.prepare(REQUEST, ctx(up))
    problem = caught.value.problem
    assert (problem.code, problem.retry_after, problem.source) == ("rate_limited", 17, "upstream")
    clock.now += 10
    with pytest.raises(UpstreamProblem) as again:
        await asyncio.gather(*(auth.prepare(REQUEST, ctx(up)) for _ in range(20)))
    assert again.value.problem.retry_after == pytest.approx(7)
    assert len(up.logins) == 1  # no login storm while paused
    clock.now += 8
    await auth.prepare(REQUEST, ctx(up))
    assert len(up.logins) == 2


async def test_login_429_without_retry_after_backs_off_exponentially_up_to_a_bound() -> None:
    up = Upstream([UpstreamReply(429)] * 10)
    auth, clock = make(up, login_backoff_max=8.0)
    waits = []
    for _ in range(6):
        with pytest.raises(UpstreamProblem) as caught:
            await auth.prepare(REQUEST, ctx(up))
        waits.append(caught.value.problem.retry_after)
        clock.now += caught.value.problem.retry_after or 0
    assert waits == [1, 2, 4, 8, 8, 8]


async def test_a_refused_password_fails_without_looping() -> None:
    refused = UpstreamReply(401, (), b'{"success": false, "errors": ["ERROR: Invalid email"]}')
    up = Upstream([refused, refused])
    auth, _ = make(up)
    results = await asyncio.gather(
        *(auth.prepare(REQUEST, ctx(up)) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, UpstreamAuthFailed) for r in results)
    assert len(up.logins) == 1
    assert "pw" not in str(results[0])


async def test_per_user_credentials_get_their_own_jar_and_quota_key() -> None:
    up = Upstream()
    users = {"alice": BeeswaxLogin("alice@example.com", Secret("alice-pw"))}
    auth, _ = make(up, users=users)
    c = ctx(up, user="alice")
    await auth.bind(c)
    await auth.prepare(REQUEST, c)
    assert auth.account(c) == "alice@example.com"
    assert up.logins[-1]["email"] == "alice@example.com"
    other = ctx(up, user="bob")  # unknown user: the shared login
    await auth.bind(other)
    assert auth.account(other) == "ops@example.com"


def test_cookie_parsing_follows_max_age_and_expires() -> None:
    now = 1_700_000_000.0
    assert parse_set_cookie("a=b; Max-Age=10; Expires=Thu, 01 Jan 1970 00:00:00 GMT", now) == (
        parse_set_cookie("a=b; Max-Age=10", now)
    )
    jar = CookieJar(lambda: now)
    jar.store("a=1; Path=/")
    jar.store("b=2; Max-Age=5")
    jar.store("c=3; Expires=Wed, 21 Oct 2015 07:28:00 GMT")
    jar.store("no-equals-sign")
    assert jar.header() == "a=1; b=2"
    jar.store("a=gone; Max-Age=0")
    assert jar.names() == ["b"]
    later = CookieJar(lambda: now)
    later.store("b=2; Max-Age=5")
    later._clock = lambda: now + 6
    assert later.header() is None


@pytest.mark.parametrize(
    "path",
    [
        "/rest/authenticate",
        "/rest/v2/authenticate",
        "/tenant/rest/authenticate",  # below a base path
        "/rest/Authenticate/",
        "/rest/authentic%61te",
        "/rest/authenticate;x=1",
        "/rest/authenticate/strict",
        "/rest/v2/authenticate/logout",
        "/rest/logout",
        "/custom/login",  # the configured login_path
        "/custom/login/again",
    ],
)
async def test_calls_to_the_session_paths_are_refused_before_anything_is_sent(path: str) -> None:
    up = Upstream()
    auth, _ = make(up, login_path="/custom/login")
    c = ctx(up)
    await auth.bind(c)
    with pytest.raises(InvalidRequest) as caught:
        await auth.prepare(OutboundRequest("POST", BASE, path, body=b"{}"), c)
    assert "manages the Beeswax session" in caught.value.detail
    assert up.logins == []  # refused before even the first login


async def test_ordinary_paths_are_not_mistaken_for_the_login() -> None:
    up = Upstream()
    auth, _ = make(up)
    for path in ("/rest/advertiser", "/rest/v2/authentications", "/rest/user/strict"):
        await auth.prepare(OutboundRequest("GET", BASE, path), ctx(up))
    assert len(up.logins) == 1


async def test_the_jar_takes_cookies_only_from_replies_to_calls_it_signed() -> None:
    up = Upstream()
    auth, _ = make(up)
    signed = ctx(up)
    await auth.prepare(REQUEST, signed)
    forged = ctx(up)  # same session generation, but not prepared by the auth
    forged.stale = signed.stale
    auth.observe(UpstreamReply(200, (("Set-Cookie", "k_buzz_cookie=attacker; Path=/"),)), forged)
    forged.notes["signed_path"] = "/rest/authenticate"
    auth.observe(UpstreamReply(200, (("Set-Cookie", "k_buzz_cookie=attacker; Path=/"),)), forged)
    assert (await auth.prepare(REQUEST, ctx(up))).header("Cookie") == (
        "k_buzz_cookie=s1; k_buzz_remember=r1"
    )


async def test_a_401_on_a_fresh_session_that_never_worked_is_final() -> None:
    """ "No rights" 401s: an endpoint that always answers 401 must not cause a
    login per call (the login quota would lock the tenant out)."""
    up = Upstream()
    auth, clock = make(up)
    for _ in range(12):
        c = ctx(up)
        await auth.prepare(REQUEST, c)
        auth.observe(UpstreamReply(401), c)
        assert not auth.rejected(UpstreamReply(401), c)
        clock.now += 0.5
    assert len(up.logins) == 1
    clock.now += 10  # a session this old may have ended: one login
    c = ctx(up)
    await auth.prepare(REQUEST, c)
    assert auth.rejected(UpstreamReply(401), c)


async def test_logins_caused_by_401s_are_spaced_by_min_login_interval() -> None:
    up = Upstream()
    auth, clock = make(up, min_login_interval=30.0)

    async def call(status: int) -> bool:
        c = ctx(up)
        await auth.prepare(REQUEST, c)
        auth.observe(UpstreamReply(status), c)
        if auth.rejected(UpstreamReply(status), c):
            await auth.renew(c)
            return True
        return False

    assert not await call(200)
    assert await call(401)  # the session had worked: it ended, log in again
    assert len(up.logins) == 2
    clock.now += 1
    assert not await call(200)  # the new session works too...
    assert not await call(401)  # ...but a second 401-login within 30 s is refused
    assert len(up.logins) == 2
    clock.now += 29
    assert await call(401)
    assert len(up.logins) == 3
    assert not auth.rejected(UpstreamReply(404), ctx(up))


def test_min_login_interval_is_configurable() -> None:
    section = Section(
        {"email": "e@x", "password": "p", "min_login_interval": "2s"}, "upstreams.beeswax.auth"
    )
    assert parse_auth(section).min_login_interval == 2.0
    default = Section({"email": "e@x", "password": "p"}, "upstreams.beeswax.auth")
    assert parse_auth(default).min_login_interval == 10.0
