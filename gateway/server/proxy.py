"""The proxy handler: route, quota, sign, send, map the answer (docs/contract.md §1-§3)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from aiohttp import ClientResponse, web

from gateway.config import UpstreamConfig
from gateway.core.content_coding import upstream_accept_encoding
from gateway.core.errormap import MAX_ERROR_BODY
from gateway.core.headers import forwardable_request_headers
from gateway.core.links import (
    LINK_HEADERS,
    LinkMap,
    is_json,
    relink_body,
    relink_headers,
    request_origin,
)
from gateway.core.messages import (
    OutboundRequest,
    UpstreamReply,
    header_drop,
    headers_set,
)
from gateway.core.paths import UnsafePath, join_base, safe_subpath
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    Overloaded,
    PayloadTooLarge,
    UnknownUpstream,
    UpstreamError,
    UpstreamProblem,
    UpstreamUnavailable,
)
from gateway.metrics import child
from gateway.server.admission import QuotaCall, pass_quota
from gateway.server.bodies import caller_body, read_body
from gateway.server.client import UpstreamClient
from gateway.server.driver import Exchange, exchange
from gateway.server.keys import METRICS, STATE, config_of
from gateway.server.replies import buffered_response, local_response, stream_response
from gateway.server.requestinfo import INFO
from gateway.server.state import Upstream
from gateway.server.upstream_circuit import guarded
from gateway.upstreams.base import Credential, UpstreamSpec

# Successful replies of upstreams that hide errors in 200 are read up to this
# bound before being passed on; a longer body is streamed on unparsed.
MAX_INSPECT_BODY = 4 * 1024 * 1024


# RFC 9110 §9.3.8: a client must not send credentials with TRACE, and the gateway
# always adds them; CONNECT would open a tunnel. Neither is ever forwarded.
REFUSED_METHODS = frozenset({"TRACE", "CONNECT"})


def split_target(request: web.Request) -> tuple[str, str]:
    """``/{upstream}/{rest}`` from the raw, still-encoded path.

    ``rel_url`` makes an absolute-form target (RFC 9112 §3.2.2) origin-form: the
    host it names is ignored, the upstream comes from the path alone.
    """
    raw = request.rel_url.raw_path
    _, _, rest = raw.partition("/")
    name, _, sub = rest.partition("/")
    return name, sub


def build_request(
    request: web.Request, cfg: UpstreamConfig, spec: UpstreamSpec, sub: str
) -> OutboundRequest:
    try:
        subpath = spec.map_path(safe_subpath(sub))
    except UnsafePath as exc:
        raise InvalidRequest(f"path refused: {exc}", upstream=cfg.name) from None
    length = request.content_length
    if length is not None and length > cfg.max_body_bytes:
        raise PayloadTooLarge(f"request body is over {cfg.max_body_bytes} bytes", upstream=cfg.name)
    # Only codings the caller accepts and the gateway can decode for inspection.
    accept = upstream_accept_encoding(request.headers.get("Accept-Encoding"))
    own = [("Accept-Encoding", accept), ("X-Request-Id", request[INFO].request_id)]
    has_body = request.body_exists
    if has_body and length is not None:
        own.append(("Content-Length", str(length)))
    headers = headers_set(forwardable_request_headers(request.headers.items()), tuple(own))
    return OutboundRequest(
        method=request.method,
        base_url=cfg.host_url,
        path=join_base(cfg.base_path, subpath),
        query=request.rel_url.raw_query_string,
        headers=headers,
        body=None if has_body else b"",
        streamed_body=has_body,
    )


async def handle_proxy(request: web.Request) -> web.StreamResponse:
    name, sub = split_target(request)
    config = config_of(request.app)  # a reload may have swapped it
    state = request.app[STATE]
    metrics = request.app[METRICS]
    info = request[INFO]
    upstream = state.upstreams.get(name)  # read once: a reload swaps the whole object
    if upstream is None:
        raise UnknownUpstream(f"no upstream named {name[:64]!r}")
    info.upstream = name  # on every line logged from here on (logs.py)
    if request.method in REFUSED_METHODS:
        raise MethodNotAllowed(f"{request.method} is never forwarded", upstream=name)
    if state.shutting_down:
        raise UpstreamUnavailable("the gateway is shutting down", upstream=name)
    inflight = state.inflight
    if inflight >= config.server.max_inflight:
        # Shed before the event loop saturates: a saturated loop delays every
        # call, its Redis round trips included (docs/operations.md, "Capacity").
        metrics.load_shed.labels("inflight").inc()
        raise Overloaded(
            f"the gateway has {inflight} calls in flight, its limit; try again shortly",
            reason="inflight",
        )
    gauge = child(metrics.inflight, name)
    gauge.inc()
    state.inflight = inflight + 1
    try:
        breaker = state.breakers.get(name)
        if breaker is None:  # no circuit configured: no context manager per call
            return await _proxy(request, upstream, sub)
        async with guarded(breaker, info):  # an open circuit: 503 at once
            return await _proxy(request, upstream, sub)
    finally:
        gauge.dec()
        state.inflight -= 1
        state.budget.give(info.buffered)
        info.buffered = 0


@dataclass(frozen=True, slots=True)
class ProxyCall:
    """One proxied call once its credentials are bound: what every attempt reuses."""

    request: web.Request
    cfg: UpstreamConfig
    spec: UpstreamSpec
    credential: Credential
    client: UpstreamClient
    outbound: OutboundRequest
    quota: QuotaCall

    @property
    def name(self) -> str:
        return self.cfg.name


async def _proxy(request: web.Request, upstream: Upstream, sub: str) -> web.StreamResponse:
    cfg, spec = upstream.config, upstream.spec
    outbound = build_request(request, cfg, spec, sub)
    local = spec.answer_locally(cfg.auth, outbound)
    if local is not None:  # before credentials, quota or I/O; the body is never read
        return local_response(local)
    call = await _bind(request, upstream, outbound)
    result = await _attempts(call)  # admit -> exchange, once per attempt
    return await _answer(call, result)


async def _bind(request: web.Request, upstream: Upstream, outbound: OutboundRequest) -> ProxyCall:
    """The call's credentials (per-user or shared), its body when the spec's check
    or the credential (signed, replayable) needs it, and who its quota counts against."""
    state, info = request.app[STATE], request[INFO]
    cfg, spec = upstream.config, upstream.spec
    if outbound.streamed_body and spec.check_needs_body(outbound):
        outbound = await _buffered(request, cfg, outbound)
    spec.check_request(outbound)  # refused before its credentials are read
    # per-user or shared credentials; may read the token store
    credential = await upstream.auth.bind(info.user, state.token_store)
    if outbound.streamed_body and credential.needs_body(outbound):  # signed or replayable
        outbound = await _buffered(request, cfg, outbound)
    subpath = outbound.path[len(cfg.base_path) :] or "/"
    quota = QuotaCall.of(cfg, request.method, subpath, credential.account, info.user)
    return ProxyCall(request, cfg, spec, credential, upstream.client, outbound, quota)


async def _buffered(
    request: web.Request, cfg: UpstreamConfig, outbound: OutboundRequest
) -> OutboundRequest:
    """The call with its body read (up to ``max_body_bytes``) instead of streamed."""
    body = await read_body(request, cfg.max_body_bytes, cfg.name)
    return replace(
        outbound,
        headers=header_drop(outbound.headers, ("Content-Length",)),  # aiohttp sets it
        body=body,
        streamed_body=False,
    )


async def _attempts(call: ProxyCall) -> Exchange:
    """Admit (the quota) then exchange (a new credential flow: signed again), once
    per attempt the upstream's retry policy allows."""
    request, name = call.request, call.name
    state, info = request.app[STATE], request[INFO]
    breaker = state.breakers.get(name)
    halted = breaker.is_open if breaker is not None else (lambda: False)  # no resend while open
    again = (
        state.retries[name].start(request.method, info, halted) if name in state.retries else None
    )
    while True:
        await pass_quota(request, call.quota)
        started = time.perf_counter()
        info.attempts += 1
        try:
            result = await _exchange(call)
        except GatewayError as exc:
            retry = None if again is None else again.judge_error(exc)
            if again is None or retry is None or not await again.pause(retry):
                raise
            continue
        finally:
            info.upstream_seconds += time.perf_counter() - started
        if again is None or result.reply.status < 400:
            return result
        retry = again.judge_reply(result.reply, replayable=not call.outbound.streamed_body)
        if retry is None:
            return result
        if result.response is not None:
            result.response.close()
        if result.reply.status == 429:  # the account is throttled for everyone
            request.app[METRICS].upstream_throttled.labels(name).inc()
            await state.limiter.cooldown(name, call.quota.account, retry.delay)
        if not await again.pause(retry):
            return result  # the circuit opened meanwhile: the caller gets this reply


async def _exchange(call: ProxyCall) -> Exchange:
    request, cfg = call.request, call.cfg
    return await exchange(
        call.client,
        call.credential,
        call.outbound,
        # A HEAD reply has no body to inspect; its Content-Length is the GET's.
        body_limit=lambda head: 0 if request.method == "HEAD" else inspect_limit(call.spec, head),
        body=lambda: caller_body(
            request, cfg.max_body_bytes, cfg.name, config_of(request.app).server.body_timeout
        ),
    )


async def _answer(call: ProxyCall, result: Exchange) -> web.StreamResponse:
    """The caller's reply: a mapped problem, an inspected (relinked) body, or a stream."""
    request, cfg, spec = call.request, call.cfg, call.spec
    reply = result.reply
    request[INFO].upstream_status = reply.status
    if any(k.lower() in LINK_HEADERS for k, _ in reply.headers):  # the map only when used
        reply = replace(reply, headers=relink_headers(reply.headers, link_map(request, cfg, spec)))
    if reply.body is not None and (reply.status >= 400 or not reply.truncated):
        if result.response is not None:
            # An error body over the bound: the parser sees the bounded prefix,
            # the rest is never read.
            result.response.close()
        return await _inspected(call, reply)
    if result.response is None:  # all read, but its content is over the bound: not parsed
        return buffered_response(reply, (), reply.wire_body or b"")
    whole = arrived_whole(request, result.response, reply)
    if whole is not None:  # the body came with the head: sent in one piece, not streamed
        return buffered_response(reply, (), whole)
    return await stream_response(
        request, result.response, reply, (), prefix=reply.wire_body or b"", client=call.client
    )


async def _inspected(call: ProxyCall, reply: UpstreamReply) -> web.Response:
    """A reply read whole: an error (or a 200 hiding one) raised as a problem, else
    passed on with its links pointing at the gateway."""
    spec, name = call.spec, call.name
    is_error = reply.status >= 400
    problem = spec.parse_error(reply) if is_error or spec.errors_in_200 else None
    if problem is None and is_error:
        raise UpstreamError(f"{name} answered HTTP {reply.status}", upstream=name)
    if problem is not None:
        if problem.code == "rate_limited":
            call.request.app[METRICS].upstream_throttled.labels(name).inc()
            await call.request.app[STATE].limiter.cooldown(
                name, call.quota.account, problem.retry_after or 1.0
            )
        raise UpstreamProblem(problem.with_upstream(name))
    if spec.links_in_body:
        reply = relink_body(reply, link_map(call.request, call.cfg, spec))
    return buffered_response(reply, spec.success_headers(reply), reply.wire_body or b"")


def arrived_whole(request: web.Request, resp: ClientResponse, reply: UpstreamReply) -> bytes | None:
    """The whole body of a reply not read yet, when all of it has already arrived
    (a small reply usually comes in the same packets as its head); None when more
    is to come, or for a reply whose framing is not its body's length (a HEAD's,
    a 204's or 304's, whose Content-Length describes another body)."""
    if (
        reply.body is not None
        or request.method == "HEAD"
        or reply.status in (204, 304)
        or reply.status < 200
        or not resp.content.is_eof()
    ):
        return None
    body = resp.content.read_nowait(-1)
    resp.release()
    return body


def inspect_limit(spec: UpstreamSpec, head: UpstreamReply) -> int:
    """How much of a reply body to read before deciding: errors, hidden-error 200s,
    and JSON successes whose links are rewritten."""
    if head.status >= 400:
        return MAX_ERROR_BODY
    if 200 <= head.status < 300 and (
        spec.errors_in_200 or (spec.links_in_body and is_json(head.content_type))
    ):
        return MAX_INSPECT_BODY
    return 0


def link_map(request: web.Request, cfg: UpstreamConfig, spec: UpstreamSpec) -> LinkMap:
    """The upstream's own root and the gateway's URL for it: ``public_url`` when
    configured, else the scheme and ``Host`` this request came with (a missing or
    malformed ``Host``: the listen address, ``public_url``'s default)."""
    config = config_of(request.app)
    host = request.headers.get("Host")
    public = (
        config.public_url
        if config.public_url_set
        else request_origin(request.scheme, host, config.public_url)
    )
    return LinkMap(cfg.base_url + spec.map_path("/").rstrip("/"), f"{public}/{cfg.name}")
