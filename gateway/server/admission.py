"""Admitting one upstream call under its quotas: the same path for proxied calls (each
attempt, ``server/proxy.py``) and the gateway's own calls on a caller's behalf
(an upstream's 3-legged onboarding, ``server/oauth_routes.py``).

:func:`pass_quota` asks the limiter for the policies, puts the ``RateLimit``
fields on the request's reply, waits out a delay (giving the slot back if the
caller leaves or a cool-down arrives meanwhile) and raises the refusal as a
problem: 429 ``rate_limited`` or, when the limiter cannot decide, 503
``upstream_unavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.config import RatePolicy, UpstreamConfig
from gateway.errors import RateLimited, UpstreamUnavailable
from gateway.server.keys import STATE
from gateway.server.limiter import wait_out
from gateway.server.requestinfo import INFO
from gateway.server.tracing_env import wait_span


@dataclass(frozen=True, slots=True)
class QuotaCall:
    """Who a call counts against: the four values every limiter call takes."""

    upstream: str
    account: str
    policies: tuple[RatePolicy, ...]
    user: str | None

    @classmethod
    def of(
        cls, cfg: UpstreamConfig, method: str, subpath: str, account: str, user: str | None
    ) -> QuotaCall:
        """A call to ``subpath`` (below the base URL) under every policy of ``cfg``
        that applies to it."""
        if not cfg.rate_limits:
            return cls(cfg.name, account, (), user)
        policies = tuple(p for p in cfg.rate_limits if p.applies(method, subpath))
        return cls(cfg.name, account, policies, user)


async def pass_quota(request: web.Request, call: QuotaCall) -> None:
    """The rate limiter's say on one attempt: go, wait for the slot, or refuse."""
    state, info = request.app[STATE], request[INFO]
    name, account, policies, user = call.upstream, call.account, call.policies, call.user
    decision = await state.limiter.acquire(name, policies, account, user)
    info.ratelimit_headers = decision.headers
    if not decision.allowed:
        if decision.unavailable:
            raise UpstreamUnavailable(decision.detail or "rate limiter unavailable", upstream=name)
        raise RateLimited(
            decision.detail or "the gateway's quota for this upstream account is used up",
            upstream=name,
            retry_after=decision.retry_after,
        )
    if decision.delay > 0:
        info.ratelimit_delay += decision.delay
        # gives the slot back if the caller leaves or a cool-down refuses it
        with wait_span(state.tracing, name, decision.delay):
            late = await wait_out(state.limiter, name, account, policies, user, decision,
                                  lambda: request.transport is None)  # fmt: skip
        if late is not None:  # a cool-down was put meanwhile
            raise RateLimited(late.detail, upstream=name, retry_after=late.retry_after)


async def admit(
    request: web.Request,
    cfg: UpstreamConfig,
    method: str,
    subpath: str,
    account: str,
    user: str | None,
) -> None:
    """:func:`pass_quota` for a call to ``subpath`` (below the base URL) with every
    policy of ``cfg`` that applies to it."""
    await pass_quota(request, QuotaCall.of(cfg, method, subpath, account, user))
