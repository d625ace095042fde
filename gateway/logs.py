"""Structured logs (structlog): JSON lines to stdout, console output on a terminal.

The pipeline ends in :class:`SecretRedactor`, so that no token, cookie,
password, signature key or ``Authorization`` value reaches a log line even when
a developer logs one by mistake. Known secret values are masked with the
app's :class:`~gateway.core.secrets.SecretMasker`, which reaches the processor
two ways (``docs/architecture.md``, "Secret masking"): the masker the
processor holds (``configure_logging(..., masker)``: ``gateway run`` gives it
its app's), for every line; and, while a request is served, the masker of the
app serving it, in the request's :class:`RequestScope` (:data:`CURRENT_REQUEST`,
set by the problem middleware), so two apps in one process each mask their
lines with their own. The same scope gives every line logged while a request
is served its ``request_id``, ``user`` and ``upstream`` (:func:`add_request_fields`),
read from the request's record when the line is rendered: one context
variable set per request instead of one structlog context variable bound (and
reset) per field.

The request middleware emits one canonical line per request (docs/contract.md
§4) through :func:`log_access`. With JSON output that line is rendered by an
:class:`AccessWriter` of its own, not by structlog's chain: the same fields,
the same redaction of its free fields, the same JSON, one write and flush per
line, in about a third of the work (the chain's generic steps were most of the
line's cost). Console output and other levels take structlog's chain.

Level and format come from the config (``log.level``, ``log.format``); the
environment variables ``GATEWAY_LOG_LEVEL`` and ``GATEWAY_LOG_FORMAT`` win over
the file (:func:`log_settings`). Records of the standard ``logging`` module
(aiohttp's own errors, for instance) go through the same processors, so they
are JSON lines too and are redacted as well.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any, Protocol, TextIO

import structlog
from aiohttp.http_exceptions import HttpProcessingError

from gateway.core.jsonfast import dumps_str
from gateway.core.secrets import SecretMasker

REDACTED = "[redacted]"
SECRET_KEYS = re.compile(
    r"(authorization|cookie|password|passwd|secret|token|psk|signature|api[_-]?key|session_key)",
    re.IGNORECASE,
)
# Values that look like credentials wherever they appear inside a string.
SECRET_PATTERNS = (
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r'(?i)(oauth_[a-z_]*(?:signature|token)[a-z_]*)="?[^",&\s]+'),
    re.compile(r"(?i)\b(signature|password|token|psk|session|key)=[^&\s\"']+"),
)

# Any of them needs one of these (the last two start with `key=`): a text with none
# is checked with one scan instead of three substitutions.
_SECRET_HINT = re.compile(r"(?i)bearer|basic|=")


class AccessEvent(str):
    """The event name of the canonical request line (:data:`ACCESS_EVENT`): the
    redactor checks only that line's free fields (:data:`ACCESS_TRUSTED`)."""

    __slots__ = ()


ACCESS_EVENT = AccessEvent("request")  # renders as "request"; equal to "request"

# The fields of the request line whose values the gateway makes itself: names from
# its config, statuses, problem codes, durations, counts, the level, the time, the
# worker index. Nothing a caller or an upstream sends can reach them, so they are not
# scanned. Every other field of that line (the path, X-Gateway-User, X-Request-Id, the
# method as sent, a detail, and any field bound later) gets the full redaction.
ACCESS_TRUSTED = frozenset(
    {"event", "level", "timestamp", "upstream", "status", "code", "duration_ms",
     "upstream_ms", "ratelimit_delay_ms", "upstream_status", "retries", "worker"}
)  # fmt: skip


class RequestFacts(Protocol):
    """What a request's record (``server/requestinfo.py``) gives its log lines."""

    request_id: str
    user: str | None
    upstream: str | None


class RequestScope:
    """The request being served: its record and the masker of the app serving it."""

    __slots__ = ("info", "masker")

    def __init__(self, info: RequestFacts, masker: SecretMasker | None) -> None:
        self.info = info
        self.masker = masker


# The request the current task serves (the problem middleware sets it, and resets
# it when the request ends); None outside a request.
CURRENT_REQUEST: ContextVar[RequestScope | None] = ContextVar("gateway_request", default=None)


def add_request_fields(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current request's id, user and upstream (once known)
    on every line logged while it is served; a field the line sets itself wins."""
    scope = CURRENT_REQUEST.get()
    if scope is not None:
        info = scope.info
        event_dict.setdefault("request_id", info.request_id)
        if info.user is not None:
            event_dict.setdefault("user", info.user)
        if info.upstream is not None:
            event_dict.setdefault("upstream", info.upstream)
    return event_dict


def _current_masker(default: SecretMasker | None) -> SecretMasker | None:
    scope = CURRENT_REQUEST.get()
    return default if scope is None or scope.masker is None else scope.masker


def _scrub(text: str, masker: SecretMasker | None) -> str:
    if masker is not None:
        text = masker.mask(text)
    if _SECRET_HINT.search(text) is None:
        return text
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return text


@functools.lru_cache(maxsize=1024)  # log keys are few and fixed
def _secret_key(key: str) -> bool:
    return SECRET_KEYS.search(key) is not None


def _redact(value: Any, masker: SecretMasker | None, key: str = "") -> Any:
    if key and _secret_key(key) and not isinstance(value, bool | int | float | type(None)):
        return REDACTED
    if isinstance(value, str):
        return _scrub(value, masker)
    if isinstance(value, dict):
        return {k: _redact(v, masker, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, masker) for v in value]
    return value


class SecretRedactor:
    """structlog processor: mask secret-named keys and secret-looking values, and
    every value the masker knows: the masker of the app serving the current
    request (:data:`CURRENT_REQUEST`), else the one this processor holds (the
    process default: ``gateway run`` gives its app's; None masks by key and
    pattern only)."""

    def __init__(self, masker: SecretMasker | None = None) -> None:
        self.masker = masker

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        masker = _current_masker(self.masker)
        if type(event_dict.get("event")) is AccessEvent:  # the request line: its free fields
            _redact_free_fields(event_dict, masker)
            return event_dict
        for key in list(event_dict):
            event_dict[key] = _redact(event_dict[key], masker, key)
        return event_dict


def _redact_free_fields(event_dict: MutableMapping[str, Any], masker: SecretMasker | None) -> None:
    free = [(k, v) for k, v in event_dict.items() if k not in ACCESS_TRUSTED and v is not None]
    if _all_clean(free, masker):
        return
    for key, value in free:
        event_dict[key] = _redact(value, masker, key)  # same keys: no resize


def _all_clean(free: list[tuple[str, Any]], masker: SecretMasker | None) -> bool:
    """The common case in one pass: free fields that are plain strings (or numbers,
    such as the bound ``worker``) under ordinary keys, in which neither the masker
    nor a pattern's hint finds anything, scanned joined (a NUL between them)
    instead of one by one. Whatever is found
    (a match across two fields included) sends every field through the full
    redaction, which decides field by field."""
    values = []
    for key, value in free:
        if _secret_key(key):
            return False
        if type(value) is str:
            values.append(value)
        elif type(value) not in (int, float, bool):  # a number passes _redact unchanged
            return False
    joined = "\x00".join(values)
    if masker is not None and masker.mask(joined) is not joined:
        return False
    return _SECRET_HINT.search(joined) is None


class _UtcClock:
    """ISO 8601 UTC with microseconds, like structlog's ``TimeStamper(fmt="iso",
    utc=True)``, but always six digits (structlog drops a zero fraction) and
    truncated (structlog rounds); the date and time of day formatted once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z"


class AccessWriter:
    """The canonical request line as JSON, without structlog's chain: the line's
    fields, then ``event``, the process's bound context (``worker``), ``level``
    and ``timestamp``; its free fields redacted as :class:`SecretRedactor` does;
    written and flushed as one line, as structlog's ``PrintLogger`` does."""

    def __init__(self, file: TextIO, masker: SecretMasker | None, chain: list[Any]) -> None:
        # structlog's PrintLogger writes to whatever sys.stdout is at the time
        # when it was given the process's stdout (so that a captured stdout works)
        self._file: TextIO | None = None if file is _STDOUT else file
        self.masker = masker
        self._clock = _UtcClock()
        self._lock = threading.Lock()
        self._chain, self._renderer = chain, chain[-1]

    def in_force(self) -> bool:
        """structlog still runs the chain this writer stands in for: not replaced by
        another ``configure`` nor changed in place (``structlog.testing.capture_logs``)."""
        chain = self._chain
        return structlog.get_config()["processors"] is chain and chain[-1] is self._renderer

    def write(self, fields: dict[str, Any]) -> None:
        fields["event"] = "request"
        structlog.contextvars.merge_contextvars(None, "info", fields)
        # after the merge, as in the chain: a bound field is a free field too
        _redact_free_fields(fields, _current_masker(self.masker))
        fields["level"] = "info"
        fields["timestamp"] = self._clock.now()
        line = dumps_str(fields) + "\n"
        file = sys.stdout if self._file is None else self._file
        with self._lock:
            file.write(line)
            file.flush()


_STDOUT = sys.stdout  # as structlog's PrintLogger compares it


class LineLogger:
    """structlog's ``PrintLogger`` (it follows ``sys.stdout`` when given the
    process's stdout, so a captured stdout works), except that each line, message
    and newline, is one write: ``print()`` writes them apart, and a message over
    the text buffer's 8 KiB (a traceback) went out on its own, so that with
    several worker processes on one stdout another process's line could land
    between it and its newline, breaking both lines."""

    def __init__(self, file: TextIO) -> None:
        self._file: TextIO | None = None if file is _STDOUT else file

    def msg(self, message: str) -> None:
        file = sys.stdout if self._file is None else self._file
        with _LINE_LOCK:
            file.write(message + "\n")
            file.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


_LINE_LOCK = threading.Lock()  # one line at a time within the process
_ACCESS: list[AccessWriter | None] = [None]  # set by configure_logging


def log_access(**fields: Any) -> None:
    """The canonical request line (``event: "request"``): only its free fields are
    scanned for secrets (:data:`ACCESS_TRUSTED`)."""
    writer = _ACCESS[0]
    if writer is not None and writer.in_force():
        writer.write(fields)
    else:
        get_logger("gateway.access").info(ACCESS_EVENT, **fields)


# Key and pattern rules, plus the current request's app masker if any.
redact_secrets = SecretRedactor()


LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("auto", "json", "console")


def log_settings(level: str, fmt: str, env: Mapping[str, str]) -> tuple[str, str]:
    """The effective ``(level, format)``: ``GATEWAY_LOG_LEVEL``/``_FORMAT`` over the config.

    Raises ``ValueError`` naming the variable when the environment holds a
    value outside :data:`LEVELS` / :data:`FORMATS`.
    """
    level = env.get("GATEWAY_LOG_LEVEL", "").strip().lower() or level
    fmt = env.get("GATEWAY_LOG_FORMAT", "").strip().lower() or fmt
    if level not in LEVELS:
        raise ValueError(f"GATEWAY_LOG_LEVEL: expected one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"GATEWAY_LOG_FORMAT: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    return level, fmt


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    masker: SecretMasker | None = None,
    *,
    cache_loggers: bool = False,
) -> None:
    """JSON lines (or console lines on a terminal) on stdout, at ``level`` and above;
    known secrets masked with ``masker`` (the app's) outside a request too.

    ``cache_loggers``: each logger is built on its first use and kept (structlog's
    ``cache_logger_on_first_use``), instead of on every line. ``gateway run`` sets it:
    it configures logging once. Tests leave it off: a cached module-level logger would
    keep the first test's configuration (its level, its captured stdout) for good."""
    redactor = SecretRedactor(masker)
    use_console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if use_console
        else structlog.processors.JSONRenderer(serializer=dumps_str)  # orjson
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Any] = [
        add_request_fields,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    chain = [*shared, structlog.processors.format_exc_info, redactor, renderer]
    out = sys.stdout
    structlog.configure(
        processors=chain,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda *args: LineLogger(out),
        cache_logger_on_first_use=cache_loggers,
    )
    fast = not use_console and numeric <= logging.INFO
    _ACCESS[0] = AccessWriter(sys.stdout, masker, chain) if fast else None
    # The standard library's records (aiohttp, asyncio) take the same road.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redactor,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # aiohttp's access log is replaced by the canonical request line.
    logging.getLogger("aiohttp.access").disabled = True
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server_log.filters):
        server_log.addFilter(MalformedRequestFilter())


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs a request it cannot parse at ERROR, with a traceback whose
    message quotes the raw request line (query string included, which may hold
    a secret). It becomes one WARNING line naming only the kind of error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        get_logger("gateway.access").warning(
            "malformed_request",
            error=type(exc).__name__,
            status=exc.code,
            remote=remote if isinstance(remote, str) else None,
        )
        return False


def get_logger(name: str = "gateway") -> Any:
    return structlog.get_logger(name)
