"""StreamOne platform API v3: HMAC-SHA1 signed query parameters."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config_reader import Secret, Section
from gateway.upstreams.base import UpstreamSpec
from gateway.upstreams.passthrough import NoAuth
from gateway.upstreams.streamone_errors import parse_error

NAME = "streamone"


@dataclass(frozen=True)
class StreamOneAuthSettings:
    auth_type: str
    actor_id: str
    psk: Secret


def parse_auth(section: Section) -> StreamOneAuthSettings:
    settings = StreamOneAuthSettings(
        auth_type=section.choice("auth_type", ("user", "application")),
        actor_id=section.text("actor_id"),
        psk=section.secret("psk"),
    )
    section.done()
    return settings


SPEC = UpstreamSpec(
    name=NAME,
    parse_auth=parse_auth,
    build_auth=lambda s: NoAuth(f"{s.auth_type}:{s.actor_id}"),
    parse_error=parse_error,
    errors_in_200=True,
    map_path=lambda sub: "/api" + sub,
)
