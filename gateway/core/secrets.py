"""The process-wide set of known secret values, masked wherever text leaves the gateway.

Configured secrets are registered at start-up (``server/app.py``); secrets the
gateway obtains at run time (OAuth 2 access tokens, Beeswax session cookies,
StreamOne session keys, stored 3-legged token secrets) are registered by the
auth that obtains them. Both the log pipeline (``logs.redact_secrets``) and the
problem renderer (``server/middlewares.py``) mask them, so an upstream that
echoes a credential back cannot make the gateway reveal it.

Masking runs on every log line, so the values are matched with one compiled
alternation (rebuilt only when a value is added), and run-time values are
bounded: the oldest are forgotten first (a rotated-away cookie is dead).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
MIN_LENGTH = 4  # shorter values would mask ordinary words
MAX_KNOWN = 1024

_known: dict[str, None] = {}  # insertion-ordered set
_pattern: re.Pattern[str] | None = None


def remember_secret(value: str | None) -> None:
    global _pattern
    if value is None or len(value) < MIN_LENGTH or value in _known:
        return
    _known[value] = None
    if len(_known) > MAX_KNOWN:
        del _known[next(iter(_known))]
    _pattern = None


def remember_secrets(values: Iterable[str]) -> None:
    for value in values:
        remember_secret(value)


def _compiled() -> re.Pattern[str] | None:
    global _pattern
    if _pattern is None and _known:
        # Longest first, so a secret that contains another is masked whole.
        alternatives = sorted(_known, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in alternatives))
    return _pattern


def mask_known(text: str) -> str:
    """Replace every known secret value inside ``text``."""
    pattern = _compiled()
    return text if pattern is None else pattern.sub(REDACTED, text)


def snapshot() -> tuple[str, ...]:
    """The known values (tests restore them with :func:`restore`)."""
    return tuple(_known)


def restore(values: Iterable[str]) -> None:
    global _pattern
    _known.clear()
    _known.update(dict.fromkeys(values))
    _pattern = None
