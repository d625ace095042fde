"""Retries at the edge: per upstream policy and budget, back-off sleeps, metrics, log.

The proxy's attempt loop (``server/proxy.py``) asks a :class:`RetryCall` after
each attempt whether to go again; the call then sleeps the back-off (or the
upstream's ``Retry-After``) and the loop passes the quota again and re-signs
(each attempt runs a new credential flow: a fresh OAuth nonce, a fresh StreamOne
timestamp). Decisions are ``core/retry.py``'s. Each resend is counted in
``gateway_upstream_retries_total{upstream,reason}`` and in the access log
(``retries``); a resend the budget refused is logged (``retry_budget_exhausted``).

"Before a single byte was written" is aiohttp's ``ClientConnectorError``
(refused, unreachable, DNS) or connect timeout: raised while opening the
connection, before any write. A connection that broke after the request went
out (aiohttp's ``ServerDisconnectedError``/``ClientOSError``, turned into
``SentOnce`` by the client) counts as sent: it is never resent.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import aiohttp

from gateway.core.errormap import retry_after_seconds
from gateway.core.messages import UpstreamReply
from gateway.core.retry import CONNECT_FAILED, RetryBudget, RetryDecision, RetryPolicy, decide
from gateway.errors import GatewayError, UpstreamTimeout, UpstreamUnavailable
from gateway.logs import get_logger
from gateway.metrics import Metrics
from gateway.server.requestinfo import RequestInfo

log = get_logger("gateway.retry")


def never_written(exc: BaseException) -> bool:
    """The exchange failed while opening the connection: the upstream saw nothing."""
    if not isinstance(exc, UpstreamUnavailable | UpstreamTimeout):
        return False
    cause = exc.__cause__
    return isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


class UpstreamRetry:
    """One upstream's policy and budget (per process, like the circuit breaker)."""

    def __init__(
        self,
        upstream: str,
        policy: RetryPolicy,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.upstream = upstream
        self.policy = policy
        self.budget = RetryBudget(policy)
        self.clock = clock
        self.rng = rng
        self._retries = metrics.retries
        for reason in (CONNECT_FAILED, "429", *map(str, sorted(policy.statuses))):
            self._retries.labels(upstream, reason)  # every series exists at 0

    def start(
        self, method: str, info: RequestInfo, halted: Callable[[], bool] = lambda: False
    ) -> RetryCall:
        """``halted``: True when no resend may go (the upstream's circuit opened)."""
        now = self.clock()
        self.budget.on_call(now)
        return RetryCall(self, method, info, now, halted)


class RetryCall:
    def __init__(
        self,
        owner: UpstreamRetry,
        method: str,
        info: RequestInfo,
        now: float,
        halted: Callable[[], bool] = lambda: False,
    ) -> None:
        self.owner = owner
        self.halted = halted
        self.method = method
        self.info = info
        self.started = now
        self.attempt = 1

    def _decide(
        self,
        *,
        unsent: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
        replayable: bool = True,
    ) -> RetryDecision:
        owner = self.owner
        return decide(
            owner.policy,
            method=self.method,
            attempt=self.attempt,
            elapsed=owner.clock() - self.started,
            rng=owner.rng,
            unsent=unsent,
            status=status,
            retry_after=retry_after,
            replayable=replayable,
        )

    def judge_error(self, exc: GatewayError) -> RetryDecision | None:
        """After an attempt that raised: the decision to go again, or None."""
        if not never_written(exc):
            return None
        return self._granted(self._decide(unsent=True))

    def judge_reply(self, reply: UpstreamReply, replayable: bool) -> RetryDecision | None:
        """After an attempt that got a reply (its head at least)."""
        retry_after = retry_after_seconds(reply)
        decision = self._decide(status=reply.status, retry_after=retry_after, replayable=replayable)
        return self._granted(decision)

    def _granted(self, decision: RetryDecision) -> RetryDecision | None:
        owner = self.owner
        if not decision.retry:
            if decision.refused:
                log.info("retry_refused", upstream=owner.upstream, reason=decision.reason,
                         because=decision.refused, request_id=self.info.request_id)  # fmt: skip
            return None
        if self.halted():  # the circuit opened meanwhile: no upstream traffic while open
            log.info("retry_refused", upstream=owner.upstream, reason=decision.reason,
                     because="circuit_open", request_id=self.info.request_id)  # fmt: skip
            return None
        if not owner.budget.spend(owner.clock()):
            log.warning("retry_budget_exhausted", upstream=owner.upstream,
                        reason=decision.reason, request_id=self.info.request_id)  # fmt: skip
            return None
        owner._retries.labels(owner.upstream, decision.reason).inc()
        return decision

    async def pause(self, decision: RetryDecision) -> bool:
        """The back-off (or the upstream's Retry-After) before the next attempt;
        False when the circuit opened during it (the resend is not sent)."""
        self.attempt += 1
        await asyncio.sleep(decision.delay)
        if self.halted():
            log.info("retry_refused", upstream=self.owner.upstream, reason=decision.reason,
                     because="circuit_open", request_id=self.info.request_id)  # fmt: skip
            return False
        return True
