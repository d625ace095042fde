"""Typed application keys for the objects the handlers share."""

from __future__ import annotations

from aiohttp import web

from gateway.config import GatewayConfig
from gateway.core.secrets import SecretMasker
from gateway.metrics import Metrics
from gateway.server.state import GatewayState

CONFIG = web.AppKey("config", GatewayConfig)
METRICS = web.AppKey("metrics", Metrics)
STATE = web.AppKey("state", GatewayState)
# The app's known secrets (gateway/core/secrets.py): the auths remember into it,
# the problem renderer and the log processor mask with it.
MASKER = web.AppKey("masker", SecretMasker)


def config_of(app: web.Application) -> GatewayConfig:
    """The config in force: the start-up one, or the last one a reload swapped in."""
    return app[STATE].config or app[CONFIG]
