"""Who may call the gateway, and for which users; and whether the proxy may be exposed.

``callers.tokens`` lists the callers (``docs/auth.md`` § Callers)::

    callers:
      tokens:
        - name: reports-app          # optional, shown in logs
          token: ${REPORTS_TOKEN}    # Authorization: Bearer <token>
          users: [alice, bob]        # the X-Gateway-User ids it may act for, or "*"

A caller may always call without ``X-Gateway-User`` (the shared credentials);
with one, only for a user it names (else 403 ``forbidden``). ``users`` is
required: a token that may act for everyone says so with ``"*"``.

:func:`check_exposure`: a proxy listening beyond loopback with no caller token
lets anything that reaches the address spend the upstream credentials, so the
config is refused unless ``allow_unauthenticated_callers: true`` accepts it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from gateway.config_reader import Secret, Section
from gateway.core.headers import GATEWAY_USER
from gateway.errors import ConfigError

ANY_USER = "*"


@dataclass(frozen=True)
class CallerToken:
    """One caller's bearer token and the ``X-Gateway-User`` ids it may act for."""

    name: str
    token: Secret
    users: frozenset[str] | None  # None: any user ("*")

    def may_act_for(self, user: str) -> bool:
        return self.users is None or user in self.users


def _users(section: Section) -> frozenset[str] | None:
    key = section.key("users")
    if not section.has("users"):
        raise ConfigError(f"{key}: required: the X-Gateway-User ids this caller may act for, "
                          'or "*" for any user')  # fmt: skip
    value = section.raw("users")
    if value == ANY_USER:
        return None
    if not isinstance(value, list):
        raise ConfigError(f'{key}: expected a list of user ids or "*"')
    if not all(
        isinstance(u, str | int)
        and not isinstance(u, bool)
        and GATEWAY_USER.match(str(u))
        and u != "*"
        for u in value
    ):
        raise ConfigError(
            f"{key}: user ids are 1-128 printable ASCII characters "
            f'("*" alone, not in a list, means any user)'
        )
    return frozenset(str(u) for u in value)


def _caller(section: Section, index: int) -> CallerToken:
    caller = CallerToken(
        name=section.text("name", f"callers.tokens[{index}]"),
        token=section.secret("token"),
        users=_users(section),
    )
    section.done()
    return caller


def parse_callers(callers: Section) -> tuple[CallerToken, ...]:
    """The ``callers`` section (``tokens``); every problem named by its key."""
    out: list[CallerToken] = []
    for index, item in enumerate(callers.seq("tokens")):
        key = callers.key(f"tokens[{index}]")
        if not isinstance(item, dict):
            error = ConfigError(
                f'{key}: expected a mapping {{token: ..., users: [...] or "*"}}: each caller '
                "token names the X-Gateway-User ids it may act for"
            )
            if callers.problems is None:
                raise error
            callers.problems.add_error(error)
            continue
        section = callers.child(item, key)
        if callers.problems is None:
            out.append(_caller(section, index))
        else:
            with callers.problems.guard():
                out.append(_caller(section, index))
    callers.done()
    seen: dict[str, str] = {}
    for index, caller in enumerate(out):
        for value, what in ((caller.token.reveal(), "token"), (caller.name, "name")):
            if f"{what}:{value}" in seen:
                raise ConfigError(f"{callers.key(f'tokens[{index}]')}.{what}: the same {what} as "
                                  f"{seen[f'{what}:{value}']}")  # fmt: skip
            seen[f"{what}:{value}"] = callers.key(f"tokens[{index}]")
    return tuple(out)


def is_loopback(host: str) -> bool:
    """Only loopback addresses (``127.0.0.0/8``, ``::1``) and ``localhost``; a host name
    that may resolve elsewhere, and ``0.0.0.0``/``::`` (every interface), are not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(
    source: str, host: str, port: int, callers: tuple[CallerToken, ...], allowed: bool
) -> None:
    """Refuse a proxy reachable beyond loopback by unauthenticated callers, unless
    ``allow_unauthenticated_callers: true``. ``source`` names where the address came
    from (``listen`` or ``GATEWAY_LISTEN``)."""
    if callers or allowed or is_loopback(host):
        return
    raise ConfigError(
        f"{source}: {host}:{port} is not a loopback address and callers.tokens is empty: "
        "anything that can reach this address could call the upstreams with the gateway's "
        "credentials. Listen on 127.0.0.1 (and serve probes and metrics on ops_listen), "
        "configure callers.tokens, or set allow_unauthenticated_callers: true to accept "
        "that risk"
    )
