"""Building an upstream's auth with its I/O (``AuthIO``, ``upstreams/base.py``), once.

- ``send``: the exchanges an auth makes itself (a login, a token grant) go
  through the upstream's current client, so an auth a reload kept (its auth
  section unchanged) uses the new pool and timeouts.
- ``fleet``: the sessions shared by every replica (Redis), when configured.
- ``report``: each login or renewal is counted in
  ``gateway_auth_renewals_total{upstream, result}`` and, with tracing on, is an
  event on the call's span.
- ``masker``: the app's secret masker (``app[MASKER]``), which remembers every
  secret the auth obtains (docs/architecture.md, "Secret masking").
"""

from __future__ import annotations

from aiohttp import web

from gateway.config import UpstreamConfig
from gateway.core.messages import OutboundRequest, UpstreamReply
from gateway.server.client import UpstreamClient
from gateway.server.keys import MASKER, METRICS, STATE
from gateway.upstreams.base import AuthIO, RenewalResult, UpstreamAuth, UpstreamSpec


def build_auth(
    app: web.Application, cfg: UpstreamConfig, spec: UpstreamSpec, client: UpstreamClient
) -> UpstreamAuth:
    state, renewals, name = app[STATE], app[METRICS].auth_renewals, cfg.name

    async def send(request: OutboundRequest) -> UpstreamReply:
        current = state.upstreams.get(name)  # None while it is being built
        return await (client if current is None else current.client).send(request)

    def count(result: RenewalResult) -> None:
        renewals.labels(name, result).inc()

    report = count if state.tracing is None else state.tracing.renewal_hook(name, renewals)
    return spec.build_auth(cfg.auth, AuthIO(name, send, state.fleet, report, app[MASKER]))
