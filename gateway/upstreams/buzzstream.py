"""BuzzStream API v1.0: OAuth 1.0a HMAC-SHA1, 2- and 3-legged."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config_reader import Secret, Section
from gateway.upstreams.base import UpstreamSpec
from gateway.upstreams.buzzstream_errors import parse_error
from gateway.upstreams.passthrough import NoAuth

NAME = "buzzstream"


@dataclass(frozen=True)
class BuzzStreamAuthSettings:
    consumer_key: str
    consumer_secret: Secret


def parse_auth(section: Section) -> BuzzStreamAuthSettings:
    settings = BuzzStreamAuthSettings(
        consumer_key=section.text("consumer_key"),
        consumer_secret=section.secret("consumer_secret"),
    )
    section.done()
    return settings


SPEC = UpstreamSpec(
    name=NAME,
    parse_auth=parse_auth,
    build_auth=lambda s: NoAuth(s.consumer_key),
    parse_error=parse_error,
    default_limits=(
        {"name": "per_user", "match": "*", "limit": 5, "period": "1s", "burst": 5,
         "on_exceed": "delay", "max_delay": "10s"},
    ),
)  # fmt: skip
