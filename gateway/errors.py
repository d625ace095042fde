"""The gateway's error hierarchy. Each class knows its problem code and HTTP status.

::

    GatewayError                      (internal_error, 500)
    ├── InvalidRequest                (invalid_request, 400)
    │   ├── RequestTimeout            (invalid_request, 408: body not received in time)
    │   ├── ExpectationFailed         (invalid_request, 417: an Expect other than 100-continue)
    │   └── CodingNotImplemented      (invalid_request, 501: a transfer coding but chunked)
    ├── CallerUnauthorized            (caller_unauthorized, 401)
    ├── CallerForbidden               (forbidden, 403: not for this X-Gateway-User)
    ├── Conflict                      (conflict, 409: onboarding a user who has a token)
    ├── UnknownUpstream               (unknown_upstream, 404)
    ├── PayloadTooLarge               (payload_too_large, 413)
    ├── MethodNotAllowed              (method_not_allowed, 405: TRACE, CONNECT)
    ├── RateLimited                   (rate_limited, 429)
    ├── UpstreamAuthFailed            (upstream_auth_failed, 502)
    ├── UpstreamError                 (upstream_error, 502)
    ├── UpstreamUnavailable           (upstream_unavailable, 503)
    │   └── Overloaded                (upstream_unavailable, 503: the gateway sheds load)
    ├── UpstreamTimeout               (upstream_timeout, 504)
    └── UpstreamProblem               (any code: a mapped upstream error reply)
    ConfigError                       (not a request error: start-up fails)

Foreign exceptions (aiohttp, redis) are translated into these in exactly one
place per dependency (``server/client.py`` and ``server/limiter_redis.py``),
with ``raise ... from exc``. Messages never carry a secret.
"""

from __future__ import annotations

from gateway.core.problem import Problem


class GatewayError(Exception):
    code = "internal_error"
    status: int | None = None  # None: the catalogue's status for the code

    def __init__(
        self,
        detail: str,
        *,
        upstream: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.upstream = upstream
        self.retry_after = retry_after

    def to_problem(self) -> Problem:
        return Problem(
            code=self.code,
            status=self.status,
            detail=self.detail,
            upstream=self.upstream,
            retry_after=self.retry_after,
            source="gateway" if self.code == "rate_limited" else None,
        )


class InvalidRequest(GatewayError):
    code = "invalid_request"


class RequestTimeout(InvalidRequest):
    status = 408


class ExpectationFailed(InvalidRequest):
    status = 417


class CodingNotImplemented(InvalidRequest):
    status = 501


class CallerUnauthorized(GatewayError):
    code = "caller_unauthorized"


class CallerForbidden(GatewayError):
    code = "forbidden"


class Conflict(GatewayError):
    code = "conflict"


class UnknownUpstream(GatewayError):
    code = "unknown_upstream"


class PayloadTooLarge(GatewayError):
    code = "payload_too_large"


class MethodNotAllowed(GatewayError):
    code = "method_not_allowed"


class RateLimited(GatewayError):
    code = "rate_limited"


class UpstreamAuthFailed(GatewayError):
    code = "upstream_auth_failed"


class UpstreamError(GatewayError):
    code = "upstream_error"


class UpstreamUnavailable(GatewayError):
    code = "upstream_unavailable"


class Overloaded(UpstreamUnavailable):
    """The gateway refuses work beyond a capacity bound (``server.*``); ``reason``
    is the ``gateway_load_shed_total`` label."""

    def __init__(self, detail: str, *, reason: str, retry_after: float = 1.0) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.reason = reason


class UpstreamTimeout(GatewayError):
    code = "upstream_timeout"


class UpstreamProblem(GatewayError):
    """An upstream error reply, already mapped to a problem."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail, upstream=problem.upstream)
        self.problem = problem
        self.code = problem.code

    def to_problem(self) -> Problem:
        return self.problem


class ConfigError(Exception):
    """Invalid configuration. Each message names the bad key or missing variable.

    One error may carry several problems (``gateway check-config`` reports
    every problem of a file in one run); ``str()`` puts one per line.
    """

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems: tuple[str, ...] = problems
