"""Structured logs (structlog): JSON lines to stdout, console output on a terminal.

The pipeline ends in :class:`SecretRedactor`, so that no token, cookie,
password, signature key or ``Authorization`` value reaches a log line even when
a developer logs one by mistake. Known secret values are masked with the
app's :class:`~gateway.core.secrets.SecretMasker`, which reaches the processor
two ways (``docs/architecture.md``, "Secret masking"): the masker the
processor holds (``configure_logging(..., masker)``: ``gateway run`` gives it
its app's), for every line; and, while a request is served, the masker of the
app serving it, bound in :data:`CURRENT_MASKER` by the problem middleware, so
two apps in one process each mask their lines with their own. The request
middleware emits one canonical line per request (docs/contract.md §4).

Level and format come from the config (``log.level``, ``log.format``); the
environment variables ``GATEWAY_LOG_LEVEL`` and ``GATEWAY_LOG_FORMAT`` win over
the file (:func:`log_settings`). Records of the standard ``logging`` module
(aiohttp's own errors, for instance) go through the same processors, so they
are JSON lines too and are redacted as well.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any

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

# The masker of the app serving the current request (the problem middleware binds
# it, and resets it when the request ends); None outside a request.
CURRENT_MASKER: ContextVar[SecretMasker | None] = ContextVar("gateway_masker", default=None)


def _scrub(text: str, masker: SecretMasker | None) -> str:
    if masker is not None:
        text = masker.mask(text)
    if _SECRET_HINT.search(text) is None:
        return text
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return text


def _redact(value: Any, masker: SecretMasker | None, key: str = "") -> Any:
    if key and SECRET_KEYS.search(key) and not isinstance(value, bool | int | float | type(None)):
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
    request (:data:`CURRENT_MASKER`), else the one this processor holds (the
    process default: ``gateway run`` gives its app's; None masks by key and
    pattern only)."""

    def __init__(self, masker: SecretMasker | None = None) -> None:
        self.masker = masker

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        masker = CURRENT_MASKER.get() or self.masker
        if type(event_dict.get("event")) is AccessEvent:  # the request line: its free fields
            for key, value in event_dict.items():
                if key not in ACCESS_TRUSTED and value is not None:
                    event_dict[key] = _redact(value, masker, key)  # same keys: no resize
            return event_dict
        for key in list(event_dict):
            event_dict[key] = _redact(event_dict[key], masker, key)
        return event_dict


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
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, redactor, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=cache_loggers,
    )
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
