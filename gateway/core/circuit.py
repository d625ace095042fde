"""The circuit breaker of one upstream, as a pure state machine (time is passed in).

::

    closed ──(a run of `failures` failures, or a failure ratio ≥ `failure_ratio`
    │         over `window` seconds with at least `min_calls` calls)──▶ open
    open ──(`open_for` seconds later, the next call)──▶ half-open
    half-open: at most `half_open_probes` calls in flight (the probes); any other
               call is refused as if open
      ├─(a probe fails)──▶ open again, for another `open_for`
      └─(`half_open_probes` probes succeed)──▶ closed (counts reset)

While open a call is refused at once with the time left (``retry_after``).
What counts as a failure is the edge's decision (``server/upstream_circuit.py``):
timeouts, connection errors and 5xx replies that are not the upstream's
documented domain errors. A call that ends otherwise (the caller left, the
caller's body was refused) is *released*: it counts neither way.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATES = (CLOSED, OPEN, HALF_OPEN)


@dataclass(frozen=True)
class CircuitPolicy:
    failures: int = 5  # consecutive failures that open the circuit
    failure_ratio: float = 0.5  # ... or this share of failed calls over the window
    window: float = 30.0  # seconds
    min_calls: int = 20  # the ratio applies only with at least this many calls in the window
    open_for: float = 30.0  # seconds before the first probe
    half_open_probes: int = 1  # probes in flight at once, and successes needed to close


@dataclass(frozen=True)
class Admission:
    allowed: bool
    probe: bool = False  # the call is a half-open probe: record() must say so
    retry_after: float = 0.0  # refused: seconds until a probe may go


@dataclass
class Circuit:
    policy: CircuitPolicy
    state: str = CLOSED
    opened_until: float = 0.0
    consecutive: int = 0
    probes_in_flight: int = 0
    probe_successes: int = 0
    transitions: list[tuple[str, str]] = field(default_factory=list)  # drained by the edge
    _window: deque[tuple[float, bool]] = field(default_factory=deque)

    def admit(self, now: float) -> Admission:
        if self.state == OPEN:
            if now < self.opened_until:
                return Admission(False, retry_after=self.opened_until - now)
            self._move(HALF_OPEN)
            self.probes_in_flight = self.probe_successes = 0
        if self.state == HALF_OPEN:
            if self.probes_in_flight >= self.policy.half_open_probes:
                # the probes are out: come back about when they will have answered
                return Admission(False, retry_after=1.0)
            self.probes_in_flight += 1
            return Admission(True, probe=True)
        return Admission(True)

    def record(self, now: float, ok: bool, probe: bool = False) -> None:
        """The outcome of an admitted call."""
        if probe:
            self.probes_in_flight = max(0, self.probes_in_flight - 1)
            if self.state != HALF_OPEN:
                return
            if not ok:
                self._open(now)
                return
            self.probe_successes += 1
            if self.probe_successes >= self.policy.half_open_probes:
                self._close()
            return
        if self.state != CLOSED:
            return  # a call admitted before the circuit opened: its outcome is old news
        self._window.append((now, ok))
        self._trim(now)
        if ok:
            self.consecutive = 0
            return
        self.consecutive += 1
        if self.consecutive >= self.policy.failures or self._ratio_exceeded():
            self._open(now)

    def release(self, probe: bool = False) -> None:
        """An admitted call that ended with no verdict on the upstream."""
        if probe:
            self.probes_in_flight = max(0, self.probes_in_flight - 1)

    def remaining(self, now: float) -> float:
        return max(0.0, self.opened_until - now) if self.state == OPEN else 0.0

    def _ratio_exceeded(self) -> bool:
        calls = len(self._window)
        if calls < self.policy.min_calls:
            return False
        failed = sum(1 for _, ok in self._window if not ok)
        return failed / calls >= self.policy.failure_ratio

    def _trim(self, now: float) -> None:
        horizon = now - self.policy.window
        while self._window and self._window[0][0] <= horizon:
            self._window.popleft()

    def _open(self, now: float) -> None:
        self.opened_until = now + self.policy.open_for
        self._move(OPEN)

    def _close(self) -> None:
        self.consecutive = self.probes_in_flight = self.probe_successes = 0
        self._window.clear()
        self._move(CLOSED)

    def _move(self, to: str) -> None:
        if to != self.state:
            self.transitions.append((self.state, to))
            self.state = to
