"""The circuit breaker per upstream, at the edge: admission, verdicts, metrics, logs.

Not to be confused with ``server/circuit.py``, the breaker that guards Redis
for the limiter. This one guards each upstream that configures ``circuit:``
(see ``core/circuit.py`` for the state machine and ``docs/operations.md``,
"Circuit breaking"). State is **per process**: each replica learns on its own
that an upstream fails, which costs each replica one run of failures.

:func:`guarded` wraps one proxied call. Before anything else (the quota
included) it asks the circuit; an open circuit refuses with a 503
``upstream_unavailable`` problem whose ``Retry-After`` is the time left, and no
upstream traffic. Once the call has been sent (``info.attempts``), its outcome
is the verdict:

- failure: a timeout, a connection error, an unreadable reply, a 5xx reply
  that maps to a generic code (``upstream_error``, ``upstream_unavailable``,
  ``upstream_timeout``), i.e. not one of the upstream's documented domain errors;
- success: any other reply, 4xx and documented domain errors included (the
  upstream is up and answering);
- no verdict: the call never reached the upstream (the quota refused, the
  caller's body was refused, the caller left).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable

from gateway.core.circuit import CLOSED, HALF_OPEN, OPEN, STATES, Circuit, CircuitPolicy
from gateway.errors import (
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamProblem,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.logs import get_logger
from gateway.metrics import Metrics
from gateway.server.requestinfo import RequestInfo

STATE_VALUES = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}  # gateway_circuit_state
GENERIC_5XX = frozenset({"upstream_error", "upstream_unavailable", "upstream_timeout"})
log = get_logger("gateway.circuit")


class UpstreamBreaker:
    def __init__(
        self,
        upstream: str,
        policy: CircuitPolicy,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.circuit = Circuit(policy)
        self.clock = clock
        self._state = metrics.circuit_state.labels(upstream)
        self._transitions = metrics.circuit_transitions
        self._state.set(0)
        for state in STATES:  # every series exists at 0 from the start
            self._transitions.labels(upstream, state)

    def _publish(self) -> None:
        for before, after in self.circuit.transitions:
            self._transitions.labels(self.upstream, after).inc()
            (log.warning if after == OPEN else log.info)(
                "circuit_" + after,
                upstream=self.upstream,
                previous=before,
                open_for_s=self.circuit.policy.open_for if after == OPEN else None,
            )
        self.circuit.transitions.clear()
        self._state.set(STATE_VALUES[self.circuit.state])

    def admit(self) -> bool:
        """True for a half-open probe; raises the 503 problem when the circuit refuses."""
        admission = self.circuit.admit(self.clock())
        self._publish()
        if not admission.allowed:
            wait = admission.retry_after
            raise UpstreamUnavailable(
                f"{self.upstream} is failing: the gateway sends it no call for "
                f"{math.ceil(wait)}s (circuit {self.circuit.state.replace('_', '-')})",
                upstream=self.upstream,
                retry_after=wait,
            )
        return admission.probe

    def is_open(self) -> bool:
        """Open now (not half-open): no call, resends included, may reach the upstream."""
        return self.circuit.remaining(self.clock()) > 0

    def settle(self, probe: bool, verdict: bool | None) -> None:
        if verdict is None:
            self.circuit.release(probe)
        else:
            self.circuit.record(self.clock(), verdict, probe)
        self._publish()


def verdict_of(exc: BaseException | None, info: RequestInfo) -> bool | None:
    """True (the upstream answered), False (it failed) or None (never reached it)."""
    if info.attempts == 0:
        return None
    if exc is None:
        return True
    if isinstance(exc, UpstreamProblem):
        problem = exc.to_problem()
        return not (problem.http_status >= 500 and problem.code in GENERIC_5XX)
    if isinstance(exc, UpstreamTimeout | UpstreamUnavailable):
        return False
    if isinstance(exc, UpstreamError):
        return info.upstream_status is not None and info.upstream_status < 500
    if isinstance(exc, UpstreamAuthFailed):
        return True  # the upstream is up: it refused our credentials
    return None  # the caller left or broke its body off: no verdict on the upstream


@contextlib.asynccontextmanager
async def guarded(breaker: UpstreamBreaker | None, info: RequestInfo) -> AsyncIterator[None]:
    if breaker is None:
        yield
        return
    probe = breaker.admit()
    try:
        yield
    except BaseException as exc:
        breaker.settle(probe, verdict_of(exc, info))
        raise
    breaker.settle(probe, verdict_of(None, info))
