"""Bearer-token providers (docs/upstreams.md § bizzstream, Auth): where a token comes from.

- :class:`StaticToken`             a configured value; it cannot be renewed.
- :class:`FileToken`               a file (a mounted Kubernetes secret), re-read when
  it changes (checked at most every ``check_interval``) and when the upstream
  says the token expired.
- :class:`ClientCredentialsToken`  an OAuth 2 client-credentials grant
  (RFC 6749 §4.4) against a configured token URL, built with authlib; fetched
  before first use, again ``renew_before`` ahead of ``expires_in``, and when the
  upstream says the token expired. With Redis, the fleet shares one token per
  client (:mod:`gateway.upstreams.tokens_fleet`).

A provider's ``renew(io, stale)`` is single-flight: concurrent callers that
were refused the same token cause one renewal. Every renewal is reported
through ``io.renewal``. No provider imports an HTTP library: the grant goes
through ``io.send``. Every token a provider obtains at run time (read from the
file, granted) is remembered by the app's masker (``io.masker``),
so logs and error bodies mask it like a configured secret.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request

from gateway.config_reader import Secret, Section
from gateway.core.messages import OutboundRequest
from gateway.errors import ConfigError, GatewayError, UpstreamAuthFailed
from gateway.upstreams import tokens_fleet
from gateway.upstreams.base import AuthIO
from gateway.upstreams.renewal import Backoff, SingleFlight

Clock = Callable[[], float]
FileStamp = tuple[int, int, int]  # mtime_ns, size, inode


class TokenProvider(Protocol):
    # False when renew() can never yield another token (so no call is ever replayed).
    can_renew: bool

    async def token(self, io: AuthIO) -> Secret: ...

    async def renew(self, io: AuthIO, stale: Secret) -> None: ...


# --- settings -------------------------------------------------------------------


@dataclass(frozen=True)
class StaticTokenSettings:
    token: Secret


@dataclass(frozen=True)
class FileTokenSettings:
    path: str
    check_interval: float


@dataclass(frozen=True)
class ClientCredentialsSettings:
    token_url: str
    client_id: str
    client_secret: Secret
    scope: str | None
    auth_method: str  # client_secret_basic | client_secret_post
    renew_before: float


ProviderSettings = StaticTokenSettings | FileTokenSettings | ClientCredentialsSettings
PROVIDER_KEYS = ("token", "token_file", "client_credentials")


def parse_provider(section: Section) -> ProviderSettings:
    """Exactly one of ``token``, ``token_file`` or ``client_credentials`` (a mapping)."""
    given = [key for key in PROVIDER_KEYS if section.has(key)]
    if len(given) != 1:
        raise ConfigError(f"{section.path}: give exactly one of {', '.join(PROVIDER_KEYS)}")
    if given[0] == "token":
        return StaticTokenSettings(token=section.secret("token"))
    if given[0] == "token_file":
        return FileTokenSettings(
            path=section.text("token_file"),
            check_interval=section.duration("token_file_check_interval", 1.0),
        )
    grant = section.section("client_credentials")
    token_url = grant.text("token_url")
    parts = urlsplit(token_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise ConfigError(f"{grant.key('token_url')}: expected an http(s) URL")
    settings = ClientCredentialsSettings(
        token_url=token_url,
        client_id=grant.text("client_id"),
        client_secret=grant.secret("client_secret"),
        scope=grant.optional_str("scope"),
        auth_method=grant.choice(
            "auth_method", ("client_secret_basic", "client_secret_post"), "client_secret_basic"
        ),
        renew_before=grant.duration("renew_before", 30.0),
    )
    grant.done()
    return settings


# --- providers ------------------------------------------------------------------


class StaticToken:
    can_renew = False

    def __init__(self, settings: StaticTokenSettings) -> None:
        self._token = settings.token

    async def token(self, io: AuthIO) -> Secret:
        return self._token

    async def renew(self, io: AuthIO, stale: Secret) -> None:
        io.renewal(False)
        raise UpstreamAuthFailed(
            f"{io.upstream} says the configured static token expired; it cannot be renewed",
            upstream=io.upstream,
        )


def _stat_and_read(path: str, known: FileStamp | None) -> tuple[FileStamp, str | None]:
    """The file's stamp, and its text when the stamp differs from ``known``."""
    st = os.stat(path)  # follows the symlinks of a Kubernetes secret mount
    stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    if stamp == known:
        return stamp, None
    with open(path, encoding="utf-8") as handle:
        return stamp, handle.read()


class FileToken:
    can_renew = True

    def __init__(
        self,
        settings: FileTokenSettings,
        clock: Clock = time.monotonic,
        read: Callable[[str, FileStamp | None], tuple[FileStamp, str | None]] = _stat_and_read,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._read = read
        self._stamp: FileStamp | None = None
        self._token: Secret | None = None
        self._checked = float("-inf")
        self._flight = SingleFlight()

    def _load(self, io: AuthIO, force: bool) -> Secret:
        try:
            stamp, text = self._read(self.settings.path, None if force else self._stamp)
        except (OSError, UnicodeDecodeError):
            raise UpstreamAuthFailed(
                f"the {io.upstream} token file cannot be read", upstream=io.upstream
            ) from None
        self._checked = self._clock()
        if text is not None:
            value = text.strip()
            if not value:
                raise UpstreamAuthFailed(
                    f"the {io.upstream} token file is empty", upstream=io.upstream
                )
            io.masker.remember(value)
            self._stamp, self._token = stamp, Secret(value)
        assert self._token is not None
        return self._token

    async def token(self, io: AuthIO) -> Secret:
        if self._token is None or self._clock() - self._checked >= self.settings.check_interval:
            return self._load(io, force=False)
        return self._token

    async def renew(self, io: AuthIO, stale: Secret) -> None:
        async def reread() -> None:
            try:
                fresh = self._load(io, force=True)
            except GatewayError:
                io.renewal(False)
                raise
            io.renewal(fresh != stale)
            if fresh == stale:
                raise UpstreamAuthFailed(
                    f"{io.upstream} says the token expired and the token file has no newer one",
                    upstream=io.upstream,
                )

        await self._flight.renew(stale, lambda: self._token, reread)


_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


class ClientCredentialsToken:
    can_renew = True

    def __init__(self, settings: ClientCredentialsSettings, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._token: Secret | None = None
        self._expires: float | None = None
        self._flight = SingleFlight()
        self._backoff = Backoff(base=1.0, cap=30.0)

    def grant_request(self) -> OutboundRequest:
        """RFC 6749 §4.4.2: ``grant_type=client_credentials`` with client authentication."""
        s = self.settings
        extra = {"scope": s.scope} if s.scope else {}
        body = prepare_token_request("client_credentials", **extra)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        auth = ClientAuth(s.client_id, s.client_secret.reveal(), s.auth_method)
        _, headers, body = auth.prepare("POST", s.token_url, headers, body)
        parts = urlsplit(s.token_url)
        return OutboundRequest(
            method="POST",
            base_url=f"{parts.scheme}://{parts.netloc}",
            path=parts.path or "/",
            query=parts.query,
            headers=tuple(headers.items()),
            body=str(body).encode("utf-8"),
        )

    async def _fetch(self, io: AuthIO) -> None:
        wait = self._backoff.remaining(self._clock())
        if wait > 0:  # the grant just failed: callers that waited do not hammer the endpoint
            raise UpstreamAuthFailed(
                f"the {io.upstream} token grant failed moments ago; retried after a pause",
                upstream=io.upstream,
                retry_after=wait,
            )
        try:
            reply = await io.send(self.grant_request())
        except GatewayError:
            io.renewal(False)
            self._backoff.fail(self._clock(), "unreachable")
            raise
        try:
            data = json.loads(reply.body or b"")
        except (ValueError, UnicodeDecodeError):
            data = None
        grant = data if isinstance(data, dict) else {}
        token = grant.get("access_token")
        bearer = str(grant.get("token_type", "bearer")).lower() == "bearer"
        if reply.status != 200 or not isinstance(token, str) or not token or not bearer:
            io.renewal(False)
            self._backoff.fail(self._clock(), "refused")
            code = grant.get("error")
            why = f", {code}" if isinstance(code, str) and _ERROR_CODE.match(code) else ""
            raise UpstreamAuthFailed(
                f"the {io.upstream} token endpoint granted no token (HTTP {reply.status}{why})",
                upstream=io.upstream,
            )
        lifetime = grant.get("expires_in")
        io.masker.remember(token)
        self._token = Secret(token)
        self._expires = None
        if isinstance(lifetime, int | float) and not isinstance(lifetime, bool):
            self._expires = self._clock() + float(lifetime)
        self._backoff.succeed()
        io.renewal(True)

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def current(self) -> Secret | None:
        return self._token

    @property
    def expires(self) -> float | None:
        return self._expires

    def adopt(self, token: Secret, expires: float | None) -> None:
        """Take the fleet's token (another replica's grant)."""
        self._token, self._expires = token, expires
        self._backoff.succeed()

    async def _obtain(self, io: AuthIO, rejected: Secret | None) -> None:
        if io.fleet is None:
            await self._fetch(io)
        else:
            await tokens_fleet.obtain(self, io, rejected, lambda: self._fetch(io))

    def _fresh(self) -> bool:
        if self._token is None:
            return False
        if self._expires is None:
            return True
        return self._clock() < self._expires - self.settings.renew_before

    async def token(self, io: AuthIO) -> Secret:
        if not self._fresh():
            stale = self._token
            await self._flight.renew(stale, lambda: self._token, lambda: self._obtain(io, None))
        assert self._token is not None
        return self._token

    async def renew(self, io: AuthIO, stale: Secret) -> None:
        await self._flight.renew(stale, lambda: self._token, lambda: self._obtain(io, stale))


def build_provider(settings: ProviderSettings) -> TokenProvider:
    if isinstance(settings, StaticTokenSettings):
        return StaticToken(settings)
    if isinstance(settings, FileTokenSettings):
        return FileToken(settings)
    return ClientCredentialsToken(settings)
