"""Beeswax session-cookie auth, driven by hand: the Sender is a small script, no network."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.config_reader import Secret, Section
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.errors import InvalidRequest, UpstreamAuthFailed, UpstreamProblem
from gateway.upstreams.base import AuthIO
from gateway.upstreams.beeswax import (
    BeeswaxAuthSettings,
    BeeswaxLogin,
    SessionCookieAuth,
    TenantCredential,
    parse_auth,
)
from gateway.upstreams.beeswax_cookies import CookieJar, parse_set_cookie
from tests.upstreams.flows import answer, signed

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
    io = AuthIO("beeswax", upstream.send)
    return SessionCookieAuth(settings, io, clock=clock, wall_clock=clock), clock


async def shared(
    upstream: Upstream, clock: Clock | None = None, **kw: object
) -> tuple[TenantCredential, Clock]:
    """The shared login's credential, as ``bind`` gives it to a call without a user."""
    auth, clock = make(upstream, clock, **kw)
    return await auth.bind(None, None), clock


REQUEST = OutboundRequest("GET", BASE, "/rest/advertiser", headers=(("Accept", "*/*"),))


async def test_first_call_logs_in_once_and_sends_the_jar() -> None:
    up = Upstream()
    credential, _ = await shared(up)
    _, prepared = await signed(credential, REQUEST)
    assert up.logins == [{"email": "ops@example.com", "password": "pw", "keep_logged_in": True}]
    assert prepared.header("Cookie") == "k_buzz_cookie=s1; k_buzz_remember=r1"
    assert credential.account == "ops@example.com"
    await signed(credential, REQUEST)
    assert len(up.logins) == 1


async def test_every_set_cookie_of_every_reply_is_kept() -> None:
    up = Upstream()
    credential, _ = await shared(up)
    flow, _ = await signed(credential, REQUEST)
    await answer(flow, UpstreamReply(200, (("Set-Cookie", "k_buzz_cookie=rotated; Path=/"),)))
    _, prepared = await signed(credential, REQUEST)
    assert prepared.header("Cookie") == "k_buzz_cookie=rotated; k_buzz_remember=r1"


async def test_a_reply_to_an_older_session_does_not_overwrite_the_new_cookies() -> None:
    up = Upstream()
    credential, _ = await shared(up)
    old, _ = await signed(credential, REQUEST)
    worked, _ = await signed(credential, REQUEST)
    await answer(worked, UpstreamReply(200))  # the session worked, then expired
    fresh, _ = await signed(credential, REQUEST)
    assert await answer(fresh, UpstreamReply(401)) is not None  # another call logged in again
    await answer(old, UpstreamReply(200, (("Set-Cookie", "k_buzz_cookie=late; Path=/"),)))
    assert (await signed(credential, REQUEST))[1].header("Cookie") == (
        "k_buzz_cookie=s2; k_buzz_remember=r2"
    )


async def test_concurrent_401s_cause_exactly_one_login_and_each_replays() -> None:
    up = Upstream()
    credential, _ = await shared(up)
    first, _ = await signed(credential, REQUEST)
    await answer(first, UpstreamReply(200))  # the session worked, then expired
    calls = [(await signed(credential, REQUEST))[0] for _ in range(100)]
    rejected = UpstreamReply(401)
    replays = await asyncio.gather(*(answer(flow, rejected) for flow in calls))
    assert None not in replays  # each judged it a rejection, and renewed
    assert len(up.logins) == 2  # the first login, then one renewal for all 100
    cookies = {r.header("Cookie") for r in replays if r is not None}
    assert cookies == {"k_buzz_cookie=s2; k_buzz_remember=r2"}


async def test_login_429_honours_retry_after_and_pauses_logins() -> None:
    up = Upstream([UpstreamReply(429, (("Retry-After", "17"),), b'{"success": false}')])
    credential, clock = await shared(up)
    with pytest.raises(UpstreamProblem) as caught:
        await signed(credential, REQUEST)
    problem = caught.value.problem
    assert (problem.code, problem.retry_after, problem.source) == ("rate_limited", 17, "upstream")
    clock.now += 10
    with pytest.raises(UpstreamProblem) as again:
        await asyncio.gather(*(signed(credential, REQUEST) for _ in range(20)))
    assert again.value.problem.retry_after == pytest.approx(7)
    assert len(up.logins) == 1  # no login storm while paused
    clock.now += 8
    await signed(credential, REQUEST)
    assert len(up.logins) == 2


async def test_login_429_without_retry_after_backs_off_exponentially_up_to_a_bound() -> None:
    up = Upstream([UpstreamReply(429)] * 10)
    credential, clock = await shared(up, login_backoff_max=8.0)
    waits = []
    for _ in range(6):
        with pytest.raises(UpstreamProblem) as caught:
            await signed(credential, REQUEST)
        waits.append(caught.value.problem.retry_after)
        clock.now += caught.value.problem.retry_after or 0
    assert waits == [1, 2, 4, 8, 8, 8]


async def test_a_refused_password_fails_without_looping() -> None:
    refused = UpstreamReply(401, (), b'{"success": false, "errors": ["ERROR: Invalid email"]}')
    up = Upstream([refused, refused])
    credential, _ = await shared(up)
    results = await asyncio.gather(
        *(signed(credential, REQUEST) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, UpstreamAuthFailed) for r in results)
    assert len(up.logins) == 1
    assert "pw" not in str(results[0])


async def test_per_user_credentials_get_their_own_jar_and_quota_key() -> None:
    up = Upstream()
    users = {"alice": BeeswaxLogin("alice@example.com", Secret("alice-pw"))}
    auth, _ = make(up, users=users)
    alice = await auth.bind("alice", None)
    await signed(alice, REQUEST)
    assert alice.account == "alice@example.com"
    assert up.logins[-1]["email"] == "alice@example.com"
    other = await auth.bind("bob", None)  # unknown user: the shared login
    assert other.account == "ops@example.com"


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
    credential, _ = await shared(up, login_path="/custom/login")
    with pytest.raises(InvalidRequest) as caught:
        await signed(credential, OutboundRequest("POST", BASE, path, body=b"{}"))
    assert "manages the Beeswax session" in caught.value.detail
    assert up.logins == []  # refused before even the first login


async def test_ordinary_paths_are_not_mistaken_for_the_login() -> None:
    up = Upstream()
    credential, _ = await shared(up)
    for path in ("/rest/advertiser", "/rest/v2/authentications", "/rest/user/strict"):
        await signed(credential, OutboundRequest("GET", BASE, path))
    assert len(up.logins) == 1


async def test_the_jar_takes_cookies_only_from_replies_to_calls_it_signed() -> None:
    up = Upstream()
    credential, _ = await shared(up)
    await signed(credential, REQUEST)
    attacker = UpstreamReply(200, (("Set-Cookie", "k_buzz_cookie=attacker; Path=/"),))
    forged = credential.flow(REQUEST)  # same session generation, but it signed nothing
    with pytest.raises(TypeError):
        await forged.asend(attacker)
    login = credential.flow(OutboundRequest("POST", BASE, "/rest/authenticate"))
    with pytest.raises(InvalidRequest):
        await anext(login)
    with pytest.raises(StopAsyncIteration):
        await login.asend(attacker)
    assert (await signed(credential, REQUEST))[1].header("Cookie") == (
        "k_buzz_cookie=s1; k_buzz_remember=r1"
    )


async def test_a_401_on_a_fresh_session_that_never_worked_is_final() -> None:
    """ "No rights" 401s: an endpoint that always answers 401 must not cause a
    login per call (the login quota would lock the tenant out)."""
    up = Upstream()
    credential, clock = await shared(up)
    for _ in range(12):
        flow, _ = await signed(credential, REQUEST)
        assert await answer(flow, UpstreamReply(401)) is None  # final: passed on
        clock.now += 0.5
    assert len(up.logins) == 1
    clock.now += 10  # a session this old may have ended: one login
    flow, _ = await signed(credential, REQUEST)
    assert await answer(flow, UpstreamReply(401)) is not None


async def test_logins_caused_by_401s_are_spaced_by_min_login_interval() -> None:
    up = Upstream()
    credential, clock = await shared(up, min_login_interval=30.0)

    async def call(status: int) -> bool:
        """True when the reply was judged a rejection: renewed, and a replay yielded."""
        flow, _ = await signed(credential, REQUEST)
        return await answer(flow, UpstreamReply(status)) is not None

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
    assert not await call(404)


def test_min_login_interval_is_configurable() -> None:
    section = Section(
        {"email": "e@x", "password": "p", "min_login_interval": "2s"}, "upstreams.beeswax.auth"
    )
    assert parse_auth(section).min_login_interval == 2.0
    default = Section({"email": "e@x", "password": "p"}, "upstreams.beeswax.auth")
    assert parse_auth(default).min_login_interval == 10.0
