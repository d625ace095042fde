"""buzzstream: map error replies to the gateway's problem schema (docs/contract.md §3).

BuzzStream's error format is open (docs/upstreams.md § buzzstream). Accepted:

- JSON ``{"message": "..."}`` (what the stand-in sends), ``{"error": "..."}``,
  ``{"error": {"message": ..., "code": ...}}``, ``{"errors": [...]}`` (strings,
  or items naming a field, which become ``validation_errors``), and a bare
  JSON string or list of strings;
- plain text (its first line, when safe);
- HTML (never shown: the detail says an HTML page came).

The code always follows the HTTP status (401 after renewal
``upstream_auth_failed``, 403 ``forbidden``, 404 ``not_found``, 429
``rate_limited``, 5xx ``upstream_error``...). ``upstream_code`` is an explicit
``code``/``error_code`` member, or an ``error`` that is a snake_case token
(OAuth's ``invalid_token``). BuzzStream does not hide errors in 2xx replies.
"""

from __future__ import annotations

import re
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
from gateway.core.problem import MAX_NAME, Problem, ValidationError

NAME = "buzzstream"

_CODE_TOKEN = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")


def _upstream_code(body: dict[str, Any]) -> str | None:
    for key in ("code", "error_code", "errorCode"):
        value = body.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return safe_message(str(value), MAX_NAME)
    error = body.get("error")
    if isinstance(error, dict):
        return _upstream_code(error)
    if isinstance(error, str) and _CODE_TOKEN.match(error):
        return error
    return None


def _detail(body: dict[str, Any], items: tuple[ValidationError, ...]) -> str | None:
    for key in ("message", "error_description", "detail", "error"):
        value = body.get(key)
        if isinstance(value, dict):
            value = value.get("message") or value.get("description")
        if text := safe_message(value):
            return text
    return summarize(items) if items else None


def parse_error(reply: UpstreamReply) -> Problem | None:
    if reply.status < 400:
        return None
    body = None if reply.truncated else parse_json(reply.body)
    if isinstance(body, str | list):
        body = {"errors": body}
    if not isinstance(body, dict):
        return generic_problem(NAME, reply)
    items = validation_items(body.get("errors")) if "errors" in body else ()
    fields = [v for v in items if v.field]
    detail = _detail(body, items)
    if detail is None:
        return generic_problem(NAME, reply, upstream_code=_upstream_code(body))
    return upstream_problem(
        NAME,
        reply,
        code_for_status(reply.status),
        detail,
        upstream_code=_upstream_code(body),
        validation_errors=tuple(fields),
    )
