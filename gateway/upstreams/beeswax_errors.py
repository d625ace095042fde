"""beeswax: map error replies to the gateway's problem schema (docs/contract.md §3).

Shapes (docs/upstreams.md § beeswax):

- **0.5 envelope** ``{"success": bool, "payload": ..., "message": ..., "errors": [...]}``.
  ``ERROR:`` lines go to ``detail``, ``WARNING:`` lines to ``warnings``.
  ``success: false`` inside a 2xx is an error: ``not_found`` when the text
  says nothing was found, the per-object ``error_code`` when every failed
  object agrees, else ``validation_failed``. ``upstream_code`` is Beeswax's
  ``error_code`` (top level, or the first failed object's).
- **HTTP statuses**: 406 ``validation_failed`` (422), 409 (strict mode: a
  WARNING became an error) ``conflict`` with the warnings, 401 after the one
  re-login ``upstream_auth_failed``, 403 ``forbidden``, 405
  ``method_not_allowed``, 429 ``rate_limited``, 5xx ``upstream_error``.
- **2.0**: ``{"detail": "..."}`` gives ``detail``; ``{"field": ["msg", ...]}``
  gives ``validation_errors`` (nested objects become ``a.b``).
- A 2xx with ``success: true`` whose per-object results hold failures is
  **not** an error: it passes through byte for byte, and
  :func:`partial_failure_headers` adds ``Gateway-Partial-Failure: true``.
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
from gateway.core.messages import Headers, UpstreamReply
from gateway.core.problem import MAX_ITEMS, MAX_NAME, Problem, ValidationError

NAME = "beeswax"
PARTIAL_FAILURE_HEADER = "Gateway-Partial-Failure"

_PREFIX = re.compile(r"^\s*(ERROR|WARNING)\s*:\s*", re.IGNORECASE)
_NOT_FOUND = re.compile(r"(?i)\bnot found\b|\bnothing found\b|\bno \w+ found\b")
_FALSE = (False, 0, "false", "False", "FALSE", "0")
# "advertiser_name is required": a 0.5 line that names the field it is about.
_FIELD_LINE = re.compile(r"^([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*) (?:is|are|must|should|cannot|has) ")


def _falsy(value: Any) -> bool:
    return any(value is f or (type(value) is type(f) and value == f) for f in _FALSE)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value[: MAX_ITEMS * 2] if isinstance(v, str)]
    return []


def split_lines(lines: list[str]) -> tuple[list[str], list[str]]:
    """``ERROR:`` (and unprefixed) lines, and ``WARNING:`` lines, prefixes dropped."""
    errors: list[str] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for line in lines:
        match = _PREFIX.match(line)
        text = safe_message(line[match.end() :] if match else line)
        if text is None or text.lower() in seen:
            continue
        seen.add(text.lower())
        if match and match.group(1).upper() == "WARNING":
            warnings.append(text)
        else:
            errors.append(text)
    return errors, warnings


def _objects(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-object results of a bulk call: ``payload: [{id, success, error_code, message}]``."""
    payload = body.get("payload")
    if not isinstance(payload, list):
        return []
    return [o for o in payload if isinstance(o, dict) and "success" in o]


def _failed(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in _objects(body) if _falsy(o.get("success"))]


def _error_code(body: dict[str, Any], failed: list[dict[str, Any]]) -> str | None:
    for value in [body.get("error_code"), *(o.get("error_code") for o in failed)]:
        if isinstance(value, int | str) and not isinstance(value, bool) and str(value):
            return safe_message(str(value), MAX_NAME)
    return None


def _hidden_code(failed: list[dict[str, Any]], texts: list[str]) -> str:
    """The code of a ``success: false`` inside a 2xx (there is no HTTP status to go by)."""
    if failed:
        codes = {str(o.get("error_code")) for o in failed}
        only = codes.pop() if len(codes) == 1 else ""
        status = int(only) if only.isascii() and only.isdigit() and len(only) == 3 else 0
        return code_for_status(status) if 400 <= status <= 599 else "validation_failed"
    if any(_NOT_FOUND.search(t) for t in texts):
        return "not_found"
    return "validation_failed"


def _envelope(reply: UpstreamReply, body: dict[str, Any]) -> Problem:
    failed = _failed(body)
    lines = _strings(body.get("errors")) + _strings(body.get("message"))
    for obj in failed[:MAX_ITEMS]:
        lines += _strings(obj.get("message"))
    errors, warnings = split_lines(lines)
    payload = safe_message(body.get("payload"))
    if failed:
        objects = f"{len(failed)} of {len(_objects(body))} objects failed"
        errors = [e for e in errors if e != objects]  # Beeswax's own summary line
        errors.insert(0, objects)
    if reply.status < 400:
        code = _hidden_code(failed, [*errors, payload or ""])
    else:
        code = code_for_status(reply.status)
    if errors:
        detail = "; ".join(errors)
    elif payload:
        detail = payload
    elif warnings and reply.status == 409:
        detail = (
            f"{NAME} strict mode turned {len(warnings)} warning(s) into an error: {warnings[0]}"
        )
    else:
        detail = f"{NAME} answered HTTP {reply.status} with success: false"
    return upstream_problem(
        NAME,
        reply,
        code,
        detail,
        upstream_code=_error_code(body, failed),
        warnings=tuple(warnings),
        validation_errors=_field_lines(errors) if code == "validation_failed" else (),
    )


def _field_lines(errors: list[str]) -> tuple[ValidationError, ...]:
    found = ((_FIELD_LINE.match(e), e) for e in errors[:MAX_ITEMS])
    return tuple(ValidationError(field=m.group(1), message=e) for m, e in found if m)


def _v2(reply: UpstreamReply, body: dict[str, Any]) -> Problem | None:
    code = code_for_status(reply.status)
    detail = body.get("detail")
    if isinstance(detail, str):
        text = safe_message(detail) or f"{NAME} answered HTTP {reply.status}"
        upstream_code = safe_message(body.get("code"), MAX_NAME)
        return upstream_problem(NAME, reply, code, text, upstream_code=upstream_code)
    items = validation_items(body)
    if not items:
        return None
    return upstream_problem(NAME, reply, code, summarize(items), validation_errors=items)


def parse_error(reply: UpstreamReply) -> Problem | None:
    if reply.status < 400:
        if (
            not 200 <= reply.status < 300
            or reply.truncated
            or b'"success"' not in (reply.body or b"")
        ):
            return None
        body = parse_json(reply.body, limit=None)
        if isinstance(body, dict) and "success" in body and _falsy(body["success"]):
            return _envelope(reply, body)
        return None
    body = None if reply.truncated else parse_json(reply.body)
    if isinstance(body, dict):
        problem = _envelope(reply, body) if "success" in body else _v2(reply, body)
        if problem is not None:
            return problem
    return generic_problem(NAME, reply)


def partial_failure_headers(reply: UpstreamReply) -> Headers:
    """``Gateway-Partial-Failure: true`` on a successful 0.5 reply whose results hold failures.

    The reply itself passes through unchanged (docs/contract.md §3); this is the
    :attr:`UpstreamSpec.success_headers` hook.
    """
    if reply.truncated or b'"success"' not in (reply.body or b""):
        return ()
    body = parse_json(reply.body, limit=None)
    if not isinstance(body, dict) or _falsy(body.get("success")):
        return ()
    errors, _ = split_lines(_strings(body.get("errors")))
    if _failed(body) or errors:
        return ((PARTIAL_FAILURE_HEADER, "true"),)
    return ()
