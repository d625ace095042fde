"""Upstream-agnostic error mapping (docs/contract.md §3): status to code, safe text, shared shapes.

Each ``gateway/upstreams/<name>_errors.py`` maps its own documented error
shapes and uses these helpers for what every upstream shares:

- :func:`parse_json` reads a bounded prefix; an empty, truncated or non-JSON
  body is ``None``, never an exception.
- :func:`code_for_status` and :func:`status_for`: the generic HTTP status to
  problem code table (a 5xx is ``upstream_error``, 429 ``rate_limited``, 401
  after the driver's one renewal ``upstream_auth_failed``...).
- :func:`safe_message` / :func:`safe_text`: upstream text goes into ``detail``
  only when it is not markup, not a stack trace, with credential-looking
  values masked, on one line and bounded (see ``docs/errors.md``).
- :func:`validation_items`: per-field failures from any of the usual shapes
  (``[{field, message}]``, Joi/pydantic items, ``{"field": ["msg"]}``...).
- :func:`upstream_problem` builds the :class:`Problem`, adding ``source`` and
  ``retry_after`` for ``rate_limited``; :func:`generic_problem` is the
  fallback for a reply no upstream-specific rule recognised.

Everything here is pure: values in, values out, never an exception on any
input (property-tested with hypothesis in ``tests/errors``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any

from gateway.core.messages import UpstreamReply
from gateway.core.problem import MAX_DETAIL, MAX_ITEMS, MAX_NAME, Problem, ValidationError, bounded

MAX_ERROR_BODY = 64 * 1024  # the parser reads at most this prefix of an error body
DEFAULT_RETRY_AFTER = 1.0  # seconds, when an upstream refuses for quota without saying how long
MAX_RETRY_AFTER = 86400.0

STATUS_CODES: Mapping[int, str] = MappingProxyType(
    {
        400: "validation_failed",
        401: "upstream_auth_failed",  # the driver already renewed once, or could not
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        406: "validation_failed",
        409: "conflict",
        410: "not_found",
        412: "conflict",
        413: "payload_too_large",
        415: "validation_failed",
        422: "validation_failed",
        429: "rate_limited",
    }
)

# Markup: a page, not a message.
_MARKUP = re.compile(r"(?i)<\s*(?:!doctype|html|head|body|script|style|iframe|\?xml)\b")
_TAG = re.compile(r"<[^<>]{0,200}>")
# Stack traces and source locations, of the languages upstreams are written in.
_STACK = re.compile(
    r"Traceback \(most recent call last\)"
    r"|File \"[^\"]*\", line \d+"
    r"|^\s*at [\w$.<>\[\]/]+ ?\((?:[^()]*:\d+|Native Method|Unknown Source)\)"
    r"|\bat [\w$.]+\.[\w$<>]+\([\w$.]*\.(?:java|kt|scala|cs|js|ts|mjs):\d+"
    r"|\([^()\s]*\.(?:js|ts|mjs|cjs):\d+:\d+\)"
    r"|Exception in thread \""
    r"|\bStack trace:"
    r"|^#\d+ \S+\.php\(\d+\)"
    r"|\S+\.(?:py|rb|php|go|java|kt|cs|js|ts):\d+(?::in\b|:\d+)"
    r"|goroutine \d+ \[|\S+\.go:\d+ \+0x",
    re.MULTILINE,
)
# A credential after an auth scheme: 8+ token characters with a digit or a base64 sign
# ("Bearer 3f9a...", "Basic dXNlcjpw..."), not an English word ("Bearer token required").
_AUTH_VALUE = re.compile(
    r"(?i)\b(bearer|basic|digest)\s+(?=[A-Za-z0-9._~+/=-]*[0-9+/=])[A-Za-z0-9._~+/=-]{8,}"
)
_KEY_VALUE = re.compile(
    r"(?i)\b((?:[a-z]+_)?(?:token|password|passwd|pwd|secret|api_?key|apikey|psk|signature"
    r"|session(?:_?id|_?key)?|cookie|authorization|credentials?)|oauth_[a-z_]+)"
    r"(\"?\s*[:=]\s*\"?)[^\s\"'&,;]+"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# A long opaque run with both letters and digits: a token, a key, a signature.
_OPAQUE = re.compile(
    r"(?<![A-Za-z0-9+/_=.-])(?=[A-Za-z0-9+/_=.-]*\d)(?=[A-Za-z0-9+/_=.-]*[A-Za-z])"
    r"[A-Za-z0-9+/_=.-]{32,}"
)
REDACTED = "[redacted]"

# Keys that name the field / hold the message of one validation item. Only
# "path" and "loc" may hold a list (["a", 0] -> "a.0"); the others are strings.
_FIELD_KEYS = (
    "field", "path", "loc", "param", "parameter", "property", "propertyName", "attribute",
    "key", "name", "instancePath", "dataPath", "pointer",
)  # fmt: skip
_PATH_KEYS = ("path", "loc")
_MESSAGE_KEYS = (
    "message", "msg", "detail", "description", "error", "reason", "text", "errorMessage",
    "messages", "errors",
)  # fmt: skip
_MAX_DEPTH = 8


def code_for_status(status: int) -> str:
    """The problem code for an upstream's HTTP error status (docs/contract.md §3 catalogue)."""
    if status >= 500:
        return "upstream_error"
    return STATUS_CODES.get(status, "upstream_error")


def status_for(code: str, upstream_status: int) -> int | None:
    """The gateway's status: 4xx validation keeps the upstream's 400/422 choice."""
    if code == "validation_failed":
        return 422 if upstream_status in (406, 422) else 400
    return None


def parse_json(body: bytes | None, limit: int | None = MAX_ERROR_BODY) -> Any:
    """The JSON value of (a bounded prefix of) a body; None when empty, not JSON or truncated."""
    if not body:
        return None
    try:
        return json.loads(body if limit is None else body[:limit])
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def retry_after_seconds(reply: UpstreamReply) -> float | None:
    """``Retry-After`` as seconds: delay-seconds, or an HTTP-date against the reply's ``Date``."""
    value = (reply.header("Retry-After") or "").strip()
    if not value:
        return None
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _date_delta(value, reply.header("Date"))
    if seconds is None or seconds != seconds or seconds < 0:  # unreadable, NaN, negative
        return None
    return min(seconds, MAX_RETRY_AFTER)


def _date_delta(when: str, date: str | None) -> float | None:
    """An HTTP-date minus the reply's own Date: no clock of ours is needed (RFC 9110 §10.2.3)."""
    if date is None:
        return None
    try:
        delta = (parsedate_to_datetime(when) - parsedate_to_datetime(date)).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, delta)


def scrub_secrets(text: str) -> str:
    """Mask what looks like a credential: ``Bearer x``, ``token=x``, long opaque runs."""
    text = _AUTH_VALUE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _OPAQUE.sub(lambda m: m.group(0) if _UUID.fullmatch(m.group(0)) else REDACTED, text)


def is_markup(text: str) -> bool:
    return bool(_MARKUP.search(text))


def is_stack_trace(text: str) -> bool:
    return bool(_STACK.search(text))


def safe_message(value: Any, limit: int = MAX_DETAIL) -> str | None:
    """Upstream text fit for ``detail``: None unless a non-empty, safe string.

    Refused: markup pages and stack traces. Kept: the text, tags stripped,
    credential-looking values masked, on one line, at most ``limit`` characters.
    """
    if not isinstance(value, str):
        return None
    text = value[:4096]
    if is_markup(text) or is_stack_trace(text):
        return None
    text = bounded(scrub_secrets(_TAG.sub(" ", text)), limit)
    return text or None


def looks_like_markup(reply: UpstreamReply) -> bool:
    """An HTML or XML page (by type, or by a body that opens with ``<``)."""
    ctype = reply.content_type
    if "html" in ctype or ctype.endswith("xml"):
        return True
    head = (reply.body or b"")[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1] == b"<"


def safe_text(reply: UpstreamReply) -> str | None:
    """A short text from a non-JSON body, never a raw HTML page or a stack trace."""
    if not reply.body or looks_like_markup(reply):
        return None
    text = reply.body[:2048].decode("utf-8", "replace")
    if is_stack_trace(text):
        return None
    for line in text.splitlines():
        if line.strip():
            return safe_message(line, 200)
    return None


def describe_body(upstream: str, reply: UpstreamReply) -> str:
    """A sentence for a reply whose body gives no usable text (never the body itself)."""
    head = f"{upstream} answered HTTP {reply.status}"
    body = reply.body or b""
    if reply.truncated:
        return f"{head} with a body over {MAX_ERROR_BODY} bytes (not parsed)"
    if not body.strip():
        return f"{head} with an empty body"
    if looks_like_markup(reply):
        return f"{head} with an HTML page (not shown)"
    text = body[:2048].decode("utf-8", "replace")
    if is_stack_trace(text):
        return f"{head} with a stack trace (not shown)"
    if _jsonish(reply):
        if parse_json(body) is None:
            return f"{head} with a JSON body that cannot be parsed"
        return f"{head} with a JSON body the gateway does not recognise"
    return f"{head} with a body the gateway cannot read"


def _name(value: Any, path: bool = False) -> str | None:
    """A field name from a string or pointer (``/a/b`` -> ``a.b``), or a path list."""
    if isinstance(value, str):
        return value.strip().removeprefix("/").replace("/", ".") or None
    if path and isinstance(value, list) and value and len(value) <= 20:
        parts = [str(p) for p in value if isinstance(p, str | int) and not isinstance(p, bool)]
        return ".".join(parts) or None
    return None


def _field_of(item: dict[str, Any]) -> str | None:
    for key in _FIELD_KEYS:
        if key in item and (name := _name(item[key], key in _PATH_KEYS)):
            return name
    for nested in ("source", "context"):  # JSON:API source.pointer, Joi context.key
        inner = item.get(nested)
        if isinstance(inner, dict):
            for key in ("pointer", "parameter", "key", "label"):
                if name := _name(inner.get(key)):
                    return name
    return None


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _items(value: Any, prefix: str, depth: int) -> Iterator[tuple[str, str]]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, str):
        yield prefix, value
    elif isinstance(value, list):
        for item in value[: MAX_ITEMS * 2]:
            yield from _items(item, prefix, depth + 1)
    elif isinstance(value, dict):
        key = next((k for k in _MESSAGE_KEYS if k in value), None)
        field = _field_of(value)
        if key is not None and (isinstance(value[key], str) or field is not None):
            # one item: {"field": f, "message": m} and its many spellings
            yield from _items(value[key], _join(prefix, field) if field else prefix, depth + 1)
        else:  # a mapping of field -> message(s)
            for name, sub in list(value.items())[: MAX_ITEMS * 2]:
                yield from _items(sub, _join(prefix, str(name)), depth + 1)
    elif isinstance(value, bool | int | float):
        yield prefix, str(value)


def validation_items(value: Any, prefix: str = "") -> tuple[ValidationError, ...]:
    """Per-field failures from whatever shape an upstream uses; ``field`` is ``""`` if unknown.

    Accepted: ``[{"field": f, "message": m}]`` (and ``path``/``loc``/``param``/
    ``property``/``key``/``name``/``instancePath`` for the field, ``msg``/
    ``error``/``description``/``detail``/``reason`` for the message, Joi's
    ``context.key``), ``{"field": ["m1", "m2"]}`` (nested: ``a.b``), plain
    strings. At most :data:`MAX_ITEMS`; unsafe messages are replaced.
    """
    out: list[ValidationError] = []
    for field, message in _items(value, prefix, 0):
        text = safe_message(message) or "invalid value (message not shown)"
        out.append(ValidationError(field=bounded(scrub_secrets(field), MAX_NAME), message=text))
        if len(out) >= MAX_ITEMS:
            break
    return tuple(out)


def summarize(items: tuple[ValidationError, ...]) -> str:
    """``name: is required (and 2 more)``."""
    first = items[0]
    text = f"{first.field}: {first.message}" if first.field else first.message
    more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    # Field names come from the upstream too: the same safety rule as any detail.
    safe = safe_message(text)
    return (safe or f"{len(items)} field(s) failed validation") + more


def upstream_problem(
    upstream: str,
    reply: UpstreamReply,
    code: str,
    detail: str,
    *,
    retry_after: float | None = None,
    **fields: Any,
) -> Problem:
    """The problem for a mapped upstream reply; ``rate_limited`` gets ``source`` and a delay."""
    limited = code == "rate_limited"
    if limited and retry_after is None:
        retry_after = retry_after_seconds(reply)
        if retry_after is None:
            retry_after = DEFAULT_RETRY_AFTER
    return Problem(
        code=code,
        detail=detail,
        status=status_for(code, reply.status),
        upstream=upstream,
        upstream_status=reply.status,
        retry_after=retry_after if limited else None,
        source="upstream" if limited else None,
        **fields,
    )


def generic_problem(
    upstream: str, reply: UpstreamReply, detail: str | None = None, **fields: Any
) -> Problem:
    """The fallback: code from the HTTP status, detail from safe text or a sentence.

    An error hidden in a 2xx that reaches here is ``upstream_error``.
    """
    code = code_for_status(reply.status) if reply.status >= 400 else "upstream_error"
    if detail is None and not reply.truncated and not _jsonish(reply):
        text = safe_text(reply)
        if text is not None:
            detail = f"{upstream} answered HTTP {reply.status}: {text}"
    return upstream_problem(
        upstream, reply, code, detail or describe_body(upstream, reply), **fields
    )


def _jsonish(reply: UpstreamReply) -> bool:
    return "json" in reply.content_type or (reply.body or b"").lstrip()[:1] in (b"{", b"[")
