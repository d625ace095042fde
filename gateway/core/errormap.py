"""Upstream-agnostic error mapping: HTTP status to problem code, safe detail text.

Each upstream module maps its own documented error shapes first and falls back
on :func:`generic_problem` for anything it does not recognise.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gateway.core.messages import UpstreamReply
from gateway.core.problem import Problem, bounded

MAX_ERROR_BODY = 64 * 1024  # the parser reads at most this prefix of an error body

STATUS_CODES: dict[int, str] = {
    400: "validation_failed",
    401: "upstream_auth_failed",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "validation_failed",
    409: "conflict",
    410: "not_found",
    412: "conflict",
    413: "validation_failed",
    422: "validation_failed",
    429: "rate_limited",
}

_TAG = re.compile(r"<[^>]*>")


def code_for_status(status: int) -> str:
    if status in STATUS_CODES:
        return STATUS_CODES[status]
    if status == 503:
        return "upstream_unavailable"
    if status == 504:
        return "upstream_timeout"
    return "upstream_error"


def status_for(code: str, upstream_status: int) -> int | None:
    """The gateway's status: 4xx validation keeps the upstream's 400/422 choice."""
    if code == "validation_failed":
        return 422 if upstream_status in (406, 422) else 400
    return None


def parse_json(body: bytes | None) -> Any:
    """The JSON value of a body, or None when it is empty, not JSON or truncated."""
    if not body:
        return None
    try:
        return json.loads(body[:MAX_ERROR_BODY])
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def retry_after_seconds(reply: UpstreamReply) -> float | None:
    value = reply.header("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP-date: too rare upstream to justify parsing here
    return seconds if 0 <= seconds < 86400 else None


def safe_text(reply: UpstreamReply) -> str | None:
    """A short text from a non-JSON body, never a raw HTML page or a stack trace."""
    if not reply.body:
        return None
    if "html" in reply.content_type or reply.body.lstrip()[:1] == b"<":
        return None
    text = reply.body[:1024].decode("utf-8", "replace").strip()
    if not text or "Traceback" in text or "\n  at " in text:
        return None
    first = text.splitlines()[0]
    return bounded(_TAG.sub("", first), 200)


def generic_problem(
    upstream: str, reply: UpstreamReply, detail: str | None = None, **fields: Any
) -> Problem:
    code = code_for_status(reply.status) if reply.status >= 400 else "upstream_error"
    text = detail or safe_text(reply)
    if text is None:
        text = f"{upstream} answered HTTP {reply.status}"
        if reply.status < 400:
            text += " with a body the gateway cannot read"
    retry = retry_after_seconds(reply) if code == "rate_limited" else None
    return Problem(
        code=code,
        detail=text,
        status=status_for(code, reply.status),
        upstream=upstream,
        upstream_status=reply.status,
        retry_after=retry if retry is not None else (1.0 if code == "rate_limited" else None),
        source="upstream" if code == "rate_limited" else None,
        **fields,
    )
