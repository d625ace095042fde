"""One Beeswax tenant's cookie jar: every ``Set-Cookie`` the upstream sends is kept.

Beeswax mints new session cookies along the way (``keep_logged_in``, rotation),
so the jar stores every ``Set-Cookie`` of every reply, not only the login's
(docs/upstreams.md § beeswax). Parsing follows RFC 6265 §5.2, cut to what one
tenant host needs: name, value, ``Max-Age`` (which wins) and ``Expires``;
``Max-Age<=0`` or a past ``Expires`` deletes the cookie. ``Path`` and
``Domain`` are not used: the jar belongs to one host and its API. Every value
the jar keeps is a credential, so it is registered with
:meth:`SecretMasker.remember <gateway.core.secrets.SecretMasker.remember>` of
the app's masker (masked in logs and error bodies).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from gateway.core.secrets import SecretMasker


@dataclass(frozen=True)
class SetCookie:
    name: str
    value: str
    expires: float | None  # absolute, on the jar's clock; None: a session cookie


def parse_set_cookie(header: str, now: float) -> SetCookie | None:
    """RFC 6265 §5.2; None for a header without ``name=``."""
    first, *attributes = header.split(";")
    name, eq, value = first.partition("=")
    name, value = name.strip(), value.strip()
    if not eq or not name:
        return None
    max_age: float | None = None
    expires: float | None = None
    for attribute in attributes:
        key, _, raw = attribute.partition("=")
        key, raw = key.strip().lower(), raw.strip()
        if key == "max-age":
            try:
                max_age = float(int(raw))
            except ValueError:
                continue  # §5.2.2: ignore an invalid Max-Age
        elif key == "expires":
            try:
                expires = parsedate_to_datetime(raw).timestamp()
            except (TypeError, ValueError, IndexError):
                continue
    if max_age is not None:
        return SetCookie(name, value, now + max_age if max_age > 0 else now - 1)
    return SetCookie(name, value, expires)


class CookieJar:
    def __init__(
        self, clock: Callable[[], float] = time.time, *, masker: SecretMasker | None = None
    ) -> None:
        self._clock = clock
        self._masker = SecretMasker() if masker is None else masker
        self._cookies: dict[str, tuple[str, float | None]] = {}

    def store(self, header: str) -> None:
        now = self._clock()
        cookie = parse_set_cookie(header, now)
        if cookie is None:
            return
        if cookie.expires is not None and cookie.expires <= now:
            self._cookies.pop(cookie.name, None)
        else:
            self._masker.remember(cookie.value)
            self._cookies[cookie.name] = (cookie.value, cookie.expires)

    def clear(self) -> None:
        self._cookies.clear()

    def snapshot(self) -> list[list[object]]:
        """The live cookies as ``[name, value, expires]`` lists (JSON; shared by the fleet)."""
        now = self._clock()
        return [
            [name, value, expires]
            for name, (value, expires) in self._cookies.items()
            if expires is None or expires > now
        ]

    def restore(self, cookies: object) -> None:
        """Replace the jar with a :meth:`snapshot` (another replica's); bad items are skipped."""
        self._cookies.clear()
        for item in cookies if isinstance(cookies, list) else ():
            if not isinstance(item, list) or len(item) != 3:
                continue
            name, value, expires = item
            if isinstance(name, str) and isinstance(value, str):
                self._masker.remember(value)
                when = float(expires) if isinstance(expires, int | float) else None
                self._cookies[name] = (value, when)

    def lifetime(self, default: float) -> float:
        """Seconds until the last cookie expires; ``default`` when only session
        cookies (no ``Expires``/``Max-Age``) are held."""
        ends = [expires for _, expires in self._cookies.values() if expires is not None]
        if not ends:
            return default
        return max(1.0, max(ends) - self._clock())

    def names(self) -> list[str]:
        return sorted(self._cookies)

    def header(self) -> str | None:
        """The ``Cookie`` header value (RFC 6265 §5.4), expired cookies left out."""
        now = self._clock()
        live = [
            f"{name}={value}"
            for name, (value, expires) in self._cookies.items()
            if expires is None or expires > now
        ]
        return "; ".join(live) or None
