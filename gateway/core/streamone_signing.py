"""StreamOne API v3 request signing (docs/upstreams.md § streamone, Auth), pure.

One call is built once, as bytes, and those exact bytes are signed and sent:

- :func:`form_arguments`   a JSON object → form pairs (lists comma-joined, booleans
  1/0, null as empty), as the official PHP SDK's ``setArgument`` leaves them
- :func:`form_pairs`       a caller's form body → pairs (re-encoded below)
- :func:`php_urlencode`    one name or value as PHP's ``http_build_query`` writes
  it: space as ``+``, every byte but letters, digits and ``-_.`` as ``%XX``
- :func:`encode_form`      pairs → ``application/x-www-form-urlencoded`` bytes
- :func:`call_parameters`  ``api``, ``format``, the caller's ``account``/``customer``/
  ``timezone`` and the auth parameters, sorted by name (as the iOS SDK and the
  public vectors order them; the server checks the bytes it receives)
- :func:`string_to_sign`   ``path + "?" + query + "&" + body`` (the ``&`` always there)
- :func:`signature`        lowercase hex HMAC-SHA1 keyed with the pre-shared key
  (for a session: ``application_psk + session_key``, :func:`session_key`)
- :func:`signed_query`     the query string with ``signature=`` appended last

The login proof of a session is :mod:`gateway.core.streamone_password`.

Time is passed in (``timestamp``); nothing here does I/O. Errors are
:class:`UnusableArguments` with a message safe to show the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote_plus

API_VERSION = "3"
FORMAT = "json"
# Parameters the caller may put in the query (docs/contract.md §1); the gateway adds the rest.
CALLER_PARAMETERS = ("account", "customer", "timezone")
Pairs = list[tuple[str, str]]


class UnusableArguments(ValueError):
    """The caller's query or arguments cannot be turned into a StreamOne call."""


@dataclass(frozen=True)
class Actor:
    """Who signs: ``auth_type`` is ``user`` or ``application``."""

    auth_type: str
    actor_id: str


def _scalar(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise UnusableArguments(f"argument {name!r} is not a finite number")
        return repr(value) if not value.is_integer() else str(int(value))
    raise UnusableArguments(f"argument {name!r} must be a string, number, boolean or list")


def form_arguments(args: Mapping[str, Any]) -> Pairs:
    """A JSON object's members as StreamOne arguments (docs/upstreams.md: arrays are
    joined with commas, booleans are ``1``/``0``; ``null`` is the empty string, as
    the PHP SDK's ``setArgument`` makes it). Order is kept.

    Refused: nested objects, nested lists, and list items that contain a comma
    (they could not be told apart after joining).
    """
    pairs: Pairs = []
    for name, value in args.items():
        if value is None:
            pairs.append((name, ""))
        elif isinstance(value, list):
            items = [_scalar(name, item) for item in value]
            if any("," in item for item in items):
                raise UnusableArguments(f"argument {name!r} has an item with a comma")
            pairs.append((name, ",".join(items)))
        else:
            pairs.append((name, _scalar(name, value)))
    return pairs


def json_arguments(body: bytes) -> Pairs:
    """A JSON request body (an object) as argument pairs."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UnusableArguments("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise UnusableArguments("a JSON body must be an object of arguments")
    return form_arguments(value)


def form_pairs(body: bytes) -> Pairs:
    """A caller's ``application/x-www-form-urlencoded`` body as pairs, in order.

    ``+`` is a space and a name without ``=`` has an empty value, as PHP reads a
    form; the body must be UTF-8 once percent-decoded.
    """
    try:
        text = body.decode("ascii")
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise UnusableArguments("the form body is not percent-encoded UTF-8") from None


def php_urlencode(text: str) -> str:
    """PHP's ``urlencode`` (what ``http_build_query`` applies to names and values).

    Space is ``+``; every UTF-8 byte but ``A-Z a-z 0-9 - _ .`` is ``%XX`` with
    upper-case hex, so ``~`` is ``%7E`` (Python's ``quote`` keeps ``~``).
    """
    return quote_plus(text, safe="", encoding="utf-8").replace("~", "%7E")


def build_query(pairs: Sequence[tuple[str, str]]) -> str:
    """PHP's ``http_build_query`` of string pairs: ``name=value`` joined with ``&``."""
    return "&".join(f"{php_urlencode(name)}={php_urlencode(value)}" for name, value in pairs)


def encode_form(pairs: Sequence[tuple[str, str]]) -> bytes:
    """``application/x-www-form-urlencoded`` bytes, as the PHP SDK sends them."""
    return build_query(pairs).encode("ascii")


def caller_parameters(raw_query: str) -> Pairs:
    """The caller's query: only ``account``, ``customer`` and ``timezone``, once each,
    and never both ``account`` and ``customer`` (docs/upstreams.md)."""
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, strict_parsing=bool(raw_query))
    except ValueError:
        raise UnusableArguments("the query string is malformed") from None
    names = [name for name, _ in pairs]
    for name in names:
        if name not in CALLER_PARAMETERS:
            allowed = ", ".join(CALLER_PARAMETERS)
            raise UnusableArguments(
                f"query parameter {name[:64]!r} is not allowed (only {allowed}; "
                "arguments go in the body)"
            )
        if names.count(name) > 1:
            raise UnusableArguments(f"query parameter {name!r} is given twice")
    if "account" in names and "customer" in names:
        raise UnusableArguments("give account or customer, not both")
    return pairs


def call_parameters(
    actor: Actor, timestamp: int, caller: Sequence[tuple[str, str]], session: str | None = None
) -> Pairs:
    """Step 1 of signing: every query parameter but ``signature``, sorted by name."""
    params: Pairs = [
        ("api", API_VERSION),
        ("format", FORMAT),
        ("authentication_type", actor.auth_type),
        (actor.auth_type, actor.actor_id),
        ("timestamp", str(timestamp)),
        *caller,
    ]
    if session is not None:
        params.append(("session", session))
    return sorted(params)


def encode_query(pairs: Sequence[tuple[str, str]]) -> str:
    """The query string, encoded as the PHP SDK encodes it."""
    return build_query(pairs)


def string_to_sign(path: str, query: str, body: bytes) -> bytes:
    """Step 2: ``path?query&body``; the ``&`` is there even without arguments."""
    return path.encode("ascii") + b"?" + query.encode("ascii") + b"&" + body


def session_key(application_psk: str, key: str) -> str:
    """The signing key of a session call: ``application_psk + session_key``."""
    return application_psk + key


def signature(key: str, to_sign: bytes) -> str:
    """Step 3: lowercase hex HMAC-SHA1."""
    return hmac.new(key.encode("utf-8"), to_sign, hashlib.sha1).hexdigest()


def signed_query(path: str, query: str, body: bytes, key: str) -> str:
    """Step 4: the query to send, ``signature`` appended last."""
    return f"{query}&signature={signature(key, string_to_sign(path, query, body))}"
