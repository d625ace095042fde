"""Structured logs (structlog): JSON lines to stdout, console output on a terminal.

The pipeline ends in :func:`redact_secrets`, so that no token, cookie,
password, signature key or ``Authorization`` value reaches a log line even when
a developer logs one by mistake. The request middleware emits one canonical
line per request (contract §4).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

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
_known_secrets: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Remember configured secret values, so they are masked wherever they appear."""
    _known_secrets.update(v for v in values if len(v) >= 4)


def _scrub(text: str) -> str:
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return text


def _redact(value: Any, key: str = "") -> Any:
    if key and SECRET_KEYS.search(key) and not isinstance(value, bool | int | float | type(None)):
        return REDACTED
    if isinstance(value, str):
        return _scrub(value)
    if isinstance(value, dict):
        return {k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_secrets(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-named keys and secret-looking values."""
    for key in list(event_dict):
        event_dict[key] = _redact(event_dict[key], key)
    return event_dict


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    use_console = fmt == "console" or (fmt == "auto" and sys.stdout.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "gateway") -> Any:
    return structlog.get_logger(name)
