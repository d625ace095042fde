"""Beeswax "Buzz" API: one session cookie per tenant, renewed single-flight."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config_reader import Secret, Section
from gateway.upstreams.base import UpstreamSpec
from gateway.upstreams.beeswax_errors import parse_error
from gateway.upstreams.passthrough import NoAuth

NAME = "beeswax"


@dataclass(frozen=True)
class BeeswaxAuthSettings:
    email: str
    password: Secret
    login_path: str


def parse_auth(section: Section) -> BeeswaxAuthSettings:
    settings = BeeswaxAuthSettings(
        email=section.text("email"),
        password=section.secret("password"),
        login_path=section.text("login_path", "/rest/authenticate"),
    )
    section.done()
    return settings


SPEC = UpstreamSpec(
    name=NAME,
    parse_auth=parse_auth,
    build_auth=lambda s: NoAuth(s.email),
    parse_error=parse_error,
    errors_in_200=True,
    default_limits=(
        {"name": "report_queue", "match": "/rest/report_queue*", "limit": 1, "period": "1s",
         "on_exceed": "delay", "max_delay": "10s"},
    ),
)  # fmt: skip
