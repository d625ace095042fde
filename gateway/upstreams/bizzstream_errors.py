"""bizzstream: map error replies to the gateway's problem schema (docs/contract.md §3).

BizzStream's error body (docs/upstreams.md § bizzstream)::

    {"status": "error", "error": "validation_error", "description": "...",
     "message": "...", "userDescription": "...", "validationErrors": [...]}

- ``upstream_code`` is ``error``; the code follows it (:data:`ERROR_CODES`),
  except that a 5xx is always ``upstream_error`` and a 429 ``rate_limited``;
  an unknown ``error`` falls back on the HTTP status.
- ``detail`` is ``description`` (for developers), else ``message``.
- ``user_message`` is ``userDescription``, ``validation_errors`` come from
  ``validationErrors`` in whatever item shape it holds.
- Anything else (HTML, text, truncated JSON, empty) maps from the HTTP status.

BizzStream does not hide errors in 2xx replies: below 400 this is ``None``.
"""

from __future__ import annotations

from typing import Any

from gateway.core.errormap import (
    code_for_status,
    generic_problem,
    parse_json,
    safe_message,
    summarize,
    upstream_problem,
    validation_items,
)
from gateway.core.messages import UpstreamReply
from gateway.core.problem import MAX_NAME, Problem

NAME = "bizzstream"

# BizzStream `error` -> problem code. A token_expired that reaches the mapper
# means the one renewal did not help.
ERROR_CODES: dict[str, str] = {
    "validation_error": "validation_failed",
    "not_found": "not_found",
    "token_expired": "upstream_auth_failed",
    "unauthorized": "upstream_auth_failed",
    "invalid_token": "upstream_auth_failed",
    "forbidden": "forbidden",
    "method_not_allowed": "method_not_allowed",
    "conflict": "conflict",
    "duplicate": "conflict",
    "rate_limited": "rate_limited",
    "too_many_requests": "rate_limited",
    "internal_error": "upstream_error",
}


def _code(reply: UpstreamReply, error: str | None) -> str:
    by_status = code_for_status(reply.status)
    if reply.status >= 500 or reply.status == 429 or error is None:
        return by_status
    return ERROR_CODES.get(error.lower(), by_status)


def parse_error(reply: UpstreamReply) -> Problem | None:
    if reply.status < 400:
        return None
    body = None if reply.truncated else parse_json(reply.body)
    if not isinstance(body, dict) or not _is_error_body(body):
        return generic_problem(NAME, reply)
    code_name = safe_message(body.get("error"), MAX_NAME)
    items = validation_items(body.get("validationErrors"))
    detail = (
        safe_message(body.get("description"))
        or safe_message(body.get("message"))
        or (summarize(items) if items else None)
    )
    fields: dict[str, Any] = {"validation_errors": items}
    if code_name is not None:
        fields["upstream_code"] = code_name
    if user := safe_message(body.get("userDescription")):
        fields["user_message"] = user
    if detail is None:
        if code_name is None:
            return generic_problem(NAME, reply, **fields)
        detail = f"{NAME} answered HTTP {reply.status} ({code_name})"
    return upstream_problem(NAME, reply, _code(reply, code_name), detail, **fields)


def _is_error_body(body: dict[str, Any]) -> bool:
    return body.get("status") == "error" or any(
        k in body for k in ("error", "description", "userDescription", "validationErrors")
    )
