"""The process-wide set of known secret values, masked wherever text leaves the gateway.

Configured secrets are registered at start-up (``server/app.py``); secrets the
gateway obtains at run time (OAuth 2 access tokens, Beeswax session cookies,
StreamOne session keys, stored 3-legged token secrets) are registered by the
auth that obtains them. Both the log pipeline (``logs.redact_secrets``) and the
problem renderer (``server/middlewares.py``) mask them, so an upstream that
echoes a credential back cannot make the gateway reveal it.
"""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "[redacted]"
MIN_LENGTH = 4  # shorter values would mask ordinary words
MAX_KNOWN = 10_000  # run-time secrets are bounded: oldest are forgotten first

_known: dict[str, None] = {}  # insertion-ordered set


def remember_secret(value: str | None) -> None:
    if value is None or len(value) < MIN_LENGTH or value in _known:
        return
    _known[value] = None
    if len(_known) > MAX_KNOWN:
        del _known[next(iter(_known))]


def remember_secrets(values: Iterable[str]) -> None:
    for value in values:
        remember_secret(value)


def mask_known(text: str) -> str:
    """Replace every known secret value inside ``text``."""
    if not _known:
        return text
    for secret in sorted((s for s in _known if s in text), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
