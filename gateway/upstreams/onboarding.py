"""3-legged onboarding as an upstream module describes it: pure builders and parsers.

An upstream whose users connect their own account sets ``onboarding`` on its
:class:`~gateway.upstreams.base.UpstreamSpec` (BuzzStream: OAuth 1.0a,
``buzzstream_tokens.py``; an OAuth 2 authorization code fits the same shape).
The generic routes ``GET /oauth/<upstream>/start`` and ``.../callback``
(``server/oauth_routes.py``) do every I/O and drive it::

    # start, called by the internal app for one user
    refused (409) if pinned(settings, user) or a credential is stored, unless replace=true
    call = first_call(settings, site)               # OAuth 1.0a: the request token; OAuth 2: None
    reply = send(call.build(fresh))                 # admitted first by the quotas, on call.account
    grant = approval(settings, site, reply, fresh)  # where the user approves; a one-time handle
    save_pending(store, prefix, grant.handle, Pending(user, grant.secret, ..., site.callback_url))
    302 Location: grant.location

    # callback, the user's browser back from the upstream (no caller token)
    back = returned(query)                          # the handle and the verifier (or code)
    pending = take_pending(store, prefix, back.handle)        # once, within PENDING_TTL
    site = Site(..., pending.callback_url)          # the start's, whatever public_url is now
    call = token_call(settings, site, pending, back)
    reply = send(call.build(fresh))                 # admitted first, as above
    save_user(store, prefix, pending.user, credential(reply))  # the auth reads it: load_user

``settings`` is the upstream's parsed ``auth`` section (``spec.parse_auth``).
Values are JSON under ``<store_prefix>user:<id>`` and
``<store_prefix>pending:<handle>``; the store the server passes in encrypts
them at rest. Every secret is remembered by the app's masker (a
:class:`~gateway.core.secrets.SecretMasker`), so logs and error bodies mask it:
the routes remember ``grant.secret`` and the credential's secret (its last
value) when they obtain them, and :func:`load_user` and :func:`take_pending`
each secret they read back (perhaps written by another replica).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.core.secrets import SecretMasker
from gateway.upstreams.base import KeyValueStore

# What a handle or a code in the callback's query may be: printable ASCII, bounded.
PRINTABLE = re.compile(r"^[\x21-\x7e]{1,512}$")
PENDING_TTL = 600.0  # seconds a user has to approve at the upstream


@dataclass(frozen=True)
class Site:
    """Where the onboarding happens: the upstream's origin and base path, and
    the gateway's callback URL (``<public_url>/oauth/<upstream>/callback``)."""

    host_url: str
    base_path: str
    callback_url: str

    @property
    def base_url(self) -> str:
        return self.host_url + self.base_path


@dataclass(frozen=True)
class Fresh:
    """Per step: a random value (an OAuth 1.0a nonce, an OAuth 2 ``state``) and the time."""

    nonce: str
    timestamp: int


@dataclass(frozen=True)
class TokenCall:
    """A call the gateway makes to the upstream while onboarding: admitted by
    the quotas first, then built (signed with a fresh nonce and timestamp)."""

    subpath: str  # below the base URL: which rate-limit policies apply
    account: str  # the quota key (the client's own, as for a 2-legged call)
    build: Callable[[Fresh], OutboundRequest]
    method: str = "POST"


@dataclass(frozen=True)
class Approval:
    """Where the user approves, and what the callback will need: the one-time
    ``handle`` it brings back (a request token, a ``state``) and a ``secret``
    kept with it meanwhile (the request token's secret; "" when none)."""

    location: str
    handle: str
    secret: str

    def __repr__(self) -> str:
        return f"Approval(location={self.location!r})"


@dataclass(frozen=True)
class Returned:
    """What the browser brings back: the handle and the verifier (or code)."""

    handle: str
    code: str

    def __repr__(self) -> str:
        return "Returned(...)"


@dataclass(frozen=True)
class Pending:
    """An onboarding between its start and the user's approval."""

    user: str
    secret: str  # Approval.secret
    replace: bool = False  # the caller asked to replace the user's stored credential
    caller: str = ""  # the caller's name (callers.tokens[].name), for the log
    # The callback URL the start named (Site.callback_url: OAuth 2's redirect_uri, which
    # the code exchange must repeat), kept so that a public_url reload in between does
    # not change it; "" in a record written without it: the callback uses the current one.
    callback_url: str = ""

    def __repr__(self) -> str:
        return f"Pending(user={self.user!r}, replace={self.replace}, caller={self.caller!r})"


def no_first_call(settings: Any, site: Site) -> TokenCall | None:
    return None


def nothing_pinned(settings: Any, user: str) -> str | None:
    return None


@dataclass(frozen=True)
class Onboarding:
    # The upstream's name in messages ("BuzzStream").
    title: str
    # Where its per-user credentials and pending onboardings are kept ("oauth1:buzzstream:").
    store_prefix: str
    # Step 2: where the user approves and the handle to keep, from step 1's reply (None: none).
    approval: Callable[[Any, Site, UpstreamReply | None, Fresh], Approval]
    # The callback's query: the handle and the code; raises InvalidRequest when they are missing.
    returned: Callable[[Mapping[str, str]], Returned]
    # Step 3: exchanges the code (verifier) for the user's credential.
    token_call: Callable[[Any, Site, Pending, Returned], TokenCall]
    # Step 3's reply: the credential stored for the user (raises an upstream error);
    # its last value is the secret (the one load_user reads last), which the routes
    # remember for masking.
    credential: Callable[[UpstreamReply], Mapping[str, str]]
    # Step 1, before the approval (OAuth 1.0a: the request token); None: no call.
    first_call: Callable[[Any, Site], TokenCall | None] = no_first_call
    # The config key already holding the user's credentials (they win: onboarding
    # is refused), else None.
    pinned: Callable[[Any, str], str | None] = nothing_pinned


def _decode(raw: bytes | None, *fields: str) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(f), str) for f in fields):
        return None
    return data


async def load_user(
    store: KeyValueStore,
    prefix: str,
    user: str,
    *fields: str,
    masker: SecretMasker | None = None,
) -> tuple[str, ...] | None:
    """The user's stored credential, ``fields`` in order; the last one is the
    secret (remembered by ``masker``). None when absent or unreadable."""
    data = _decode(await store.get(f"{prefix}user:{user}"), *fields)
    if data is None:
        return None
    found = tuple(str(data[f]) for f in fields)
    if masker is not None:
        masker.remember(found[-1])
    return found


async def save_user(
    store: KeyValueStore, prefix: str, user: str, credential: Mapping[str, str]
) -> None:
    await store.set(f"{prefix}user:{user}", json.dumps(dict(credential)).encode())


async def has_user(store: KeyValueStore, prefix: str, user: str) -> bool:
    return _decode(await store.get(f"{prefix}user:{user}")) is not None


async def save_pending(store: KeyValueStore, prefix: str, handle: str, pending: Pending) -> None:
    value = {
        "user": pending.user,
        "token_secret": pending.secret,
        "replace": pending.replace,
        "caller": pending.caller,
        "callback_url": pending.callback_url,
    }
    await store.set(f"{prefix}pending:{handle}", json.dumps(value).encode(), ttl=PENDING_TTL)


async def take_pending(
    store: KeyValueStore, prefix: str, handle: str, masker: SecretMasker | None = None
) -> Pending | None:
    """The onboarding ``handle`` started, usable once (taken and deleted in one step:
    of callbacks racing with one handle, one finds it); its secret remembered by
    ``masker``."""
    data = _decode(await store.take(f"{prefix}pending:{handle}"), "user", "token_secret")
    if data is None:
        return None
    if data["token_secret"] and masker is not None:
        masker.remember(data["token_secret"])
    caller, callback_url = data.get("caller"), data.get("callback_url")
    return Pending(
        data["user"],
        data["token_secret"],
        data.get("replace") is True,
        caller if isinstance(caller, str) else "",
        callback_url if isinstance(callback_url, str) else "",
    )
