"""The one error schema (docs/contract.md §3): RFC 9457 problem details with stable codes.

:class:`Problem` is the value every error becomes, whether the gateway made it
or an upstream's reply was mapped (``gateway/upstreams/<name>_errors.py``).
:meth:`Problem.to_dict` renders the body that ``gateway/schemas/problem.json``
describes; every text that may come from an upstream is flattened to one line
and bounded there (``detail`` and ``user_message`` at :data:`MAX_DETAIL`
characters, field names and codes at :data:`MAX_NAME`, at most
:data:`MAX_ITEMS` validation errors and :data:`MAX_ITEMS` warnings), so that no
upstream can make an error body grow without bound or break JSON encoding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from gateway.core.jsonfast import dumps

# ``type`` is ``<problem_base_url>/<code>``; the deployment sets the base (config
# ``problem_base_url``, by default ``<public_url>/problems``, which the gateway serves).
DEFAULT_PROBLEM_BASE = "http://127.0.0.1:8080/problems"
PROBLEM_CONTENT_TYPE = "application/problem+json"

# code -> (default status, title)
CATALOGUE: Mapping[str, tuple[int, str]] = MappingProxyType(
    {
        "invalid_request": (400, "Invalid request"),
        "caller_unauthorized": (401, "Caller not authorized"),
        "unknown_upstream": (404, "Unknown upstream"),
        "payload_too_large": (413, "Payload too large"),
        "validation_failed": (422, "Validation failed"),
        "not_found": (404, "Not found"),
        "forbidden": (403, "Forbidden"),
        "method_not_allowed": (405, "Method not allowed"),
        "conflict": (409, "Conflict"),
        "rate_limited": (429, "Rate limited"),
        "upstream_auth_failed": (502, "Upstream authentication failed"),
        "upstream_error": (502, "Upstream error"),
        "upstream_unavailable": (503, "Upstream unavailable"),
        "upstream_timeout": (504, "Upstream timeout"),
        "internal_error": (500, "Internal error"),
    }
)

# code -> when it is used (the catalogue of docs/contract.md §3, served at /problems/<code>)
DESCRIPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "invalid_request": "The request to the gateway is malformed: a bad path, unusable "
        "arguments, a body that cannot be read.",
        "caller_unauthorized": "Caller authentication is configured and failed.",
        "unknown_upstream": "No such upstream (or no such path on the gateway).",
        "payload_too_large": "The body is over the configured limit.",
        "validation_failed": "The upstream rejected the input (400 or 422).",
        "not_found": "The upstream says the resource or action does not exist.",
        "forbidden": "The upstream account lacks rights for this action.",
        "method_not_allowed": "The upstream or the gateway refuses the method.",
        "conflict": "A conflict, including Beeswax strict-mode warnings and StreamOne "
        "*ALREADY* codes.",
        "rate_limited": "The gateway (source: gateway) or the upstream (source: upstream) refused "
        "the call for quota; Retry-After says when to come back.",
        "upstream_auth_failed": "The upstream rejected the gateway's credentials even after one "
        "renewal.",
        "upstream_error": "The upstream answered 5xx, a body that cannot be parsed, or a status "
        "the gateway cannot map.",
        "upstream_unavailable": "The connection failed, the circuit is open, the upstream is in "
        "read-only mode, or the gateway is shutting down.",
        "upstream_timeout": "No answer came within the timeout.",
        "internal_error": "A fault in the gateway itself, logged with the request id.",
    }
)

MAX_DETAIL = 300
MAX_NAME = 100  # upstream_code, validation error field names
MAX_ITEMS = 50  # validation_errors and warnings entries

_SURROGATE = re.compile("[\ud800-\udfff]")
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")


def bounded(text: str, limit: int = MAX_DETAIL) -> str:
    """One line, at most ``limit`` characters: upstream text is never echoed unbounded.

    Control characters go, and lone surrogates (valid in a JSON string escape,
    not in UTF-8) become U+FFFD, so the body always encodes.
    """
    text = text[: limit * 8]  # enough for the result even after whitespace collapses
    if not text.isascii():
        text = _SURROGATE.sub("\ufffd", text)
    flat = " ".join(_UNPRINTABLE.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class ValidationError:
    field: str
    message: str


@dataclass(frozen=True)
class Problem:
    """A problem before it is bound to a request (no ``instance``/``request_id`` yet)."""

    code: str
    detail: str
    status: int | None = None  # None: the catalogue's default for the code
    upstream: str | None = None
    upstream_status: int | None = None
    upstream_code: str | None = None
    user_message: str | None = None
    validation_errors: tuple[ValidationError, ...] = ()
    warnings: tuple[str, ...] = ()
    retry_after: float | None = None
    source: str | None = None  # rate_limited only: "gateway" | "upstream"
    extra: dict[str, Any] = field(default_factory=dict)
    # Not serialized: the edge logs this problem at error level (StreamOne 2/3:
    # our clock or our credentials are wrong, an operator must act).
    loud: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.code not in CATALOGUE:
            raise ValueError(f"unknown problem code {self.code!r}")

    @property
    def http_status(self) -> int:
        return self.status if self.status is not None else CATALOGUE[self.code][0]

    @property
    def title(self) -> str:
        return CATALOGUE[self.code][1]

    def with_upstream(self, upstream: str | None) -> Problem:
        return replace(self, upstream=upstream)

    def to_dict(
        self, *, instance: str, request_id: str, base: str = DEFAULT_PROBLEM_BASE
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"{base}/{self.code}",
            "title": self.title,
            "status": self.http_status,
            "detail": bounded(self.detail),
            "instance": instance,
            "code": self.code,
            "request_id": request_id,
            "upstream": self.upstream,
            "upstream_status": self.upstream_status,
        }
        if self.upstream_code is not None:
            body["upstream_code"] = bounded(self.upstream_code, MAX_NAME)
        if self.user_message is not None:
            body["user_message"] = bounded(self.user_message)
        if self.validation_errors:
            body["validation_errors"] = [
                {"field": bounded(v.field, MAX_NAME), "message": bounded(v.message)}
                for v in self.validation_errors[:MAX_ITEMS]
            ]
        if self.warnings:
            body["warnings"] = [bounded(w) for w in self.warnings[:MAX_ITEMS]]
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        if self.source is not None:
            body["source"] = self.source
        body.update(self.extra)
        return body

    def to_json(self, *, instance: str, request_id: str, base: str = DEFAULT_PROBLEM_BASE) -> bytes:
        return dumps(self.to_dict(instance=instance, request_id=request_id, base=base))
