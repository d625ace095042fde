"""Configuration: YAML plus ``${VAR}`` interpolation, validated once into frozen objects.

``load_config`` is the one loader: ``gateway run`` and ``gateway check-config``
both call it, so a config that passes the check is the config that runs.
Every problem is a message that starts with the key path (or the environment
variable); the loader collects them all (see ``config_reader.Problems``) and
raises one :class:`ConfigError` carrying every one.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from yarl import URL

from gateway.config_callers import CallerToken, check_exposure, parse_callers
from gateway.config_reader import Problems, Secret, Section, environ, interpolate
from gateway.config_server import ServerConfig, parse_server
from gateway.config_yaml import parse_yaml
from gateway.core.circuit import CircuitPolicy
from gateway.core.reserved import RESERVED_NAMES
from gateway.core.retry import RetryPolicy
from gateway.errors import ConfigError
from gateway.redis_url import parse_redis_url
from gateway.upstreams import REGISTRY

DEFAULT_CONFIG = "config/gateway.yaml"
DEFAULT_LISTEN = "127.0.0.1:8080"


@dataclass(frozen=True)
class RatePolicy:
    """One quota (docs/contract.md, Rate limits). ``match`` is a glob on the upstream sub-path."""

    name: str
    match: str
    methods: frozenset[str]
    limit: int
    period: float
    burst: int
    on_exceed: str  # "delay" | "reject"
    max_delay: float
    shadow: bool
    scope: str  # "account" (the upstream account) | "user" (X-Gateway-User fairness)
    margin: float = 0.0  # seconds added to each period when pacing (docs/ratelimits.md)

    def applies(self, method: str, subpath: str) -> bool:
        if self.methods and method not in self.methods:
            return False
        return fnmatch.fnmatchcase(subpath, self.match)


@dataclass(frozen=True)
class UpstreamConfig:
    name: str
    base_url: str  # no trailing slash
    connect_timeout: float  # TCP (and TLS) connect of a new connection
    head_timeout: float  # from the send to the reply's status line and headers
    pool_size: int
    max_body_bytes: int
    auth: Any  # the upstream module's frozen auth settings
    rate_limits: tuple[RatePolicy, ...]
    pool_timeout: float = 1.0  # wait for a free connection when all pool_size are busy
    idle_timeout: float = 30.0  # silence allowed between two pieces of the reply body
    circuit: CircuitPolicy | None = None  # None: no circuit breaker (docs/operations.md)
    retry: RetryPolicy | None = None  # None: never resent (docs/operations.md, Retries)

    # Computed once per config object (read on every call; the config is frozen).
    @functools.cached_property
    def host_url(self) -> str:
        url = URL(self.base_url)
        return str(url.origin())

    @functools.cached_property
    def base_path(self) -> str:
        return URL(self.base_url).raw_path.rstrip("/")


@dataclass(frozen=True)
class RedisConfig:
    url: Secret | None  # a Redis URL can carry a password
    timeout: float
    on_error: str  # "local" | "open" | "closed"
    replicas: int
    key_prefix: str
    probe_interval: float
    batch: bool = True  # concurrent limiter calls share one pipelined round trip
    # Upstream sessions kept in Redis for every replica (docs/fleet.md).
    shared_sessions: bool = True
    session_lock_ttl: float = 5.0  # the login lock's expiry (a dead holder delays this long)
    session_wait: float = 15.0  # how long a replica waits for another one's login
    mode: str = "single"  # "single" | "cluster" | "sentinel", from the URL's scheme


@dataclass(frozen=True)
class GatewayConfig:
    listen_host: str
    listen_port: int
    max_body_bytes: int
    shutdown_grace: float
    log_level: str
    log_format: str  # "auto" | "json" | "console"
    caller_tokens: tuple[CallerToken, ...]  # callers.tokens; empty: no caller auth
    redis: RedisConfig
    upstreams: Mapping[str, UpstreamConfig]
    token_store_key: Secret | None
    public_url: str  # how callers and browsers reach the gateway (OAuth callbacks)
    # A second listener serving only /healthz, /readyz and /metrics (GATEWAY_OPS_LISTEN).
    ops_listen: tuple[str, int] | None = None
    # A listener serving only the BuzzStream OAuth callback and /problems, for browsers
    # (GATEWAY_ONBOARDING_LISTEN); the proxy port can then stay on loopback.
    onboarding_listen: tuple[str, int] | None = None
    # Problem `type` URIs are `<problem_base_url>/<code>` (default <public_url>/problems).
    problem_base_url: str = "http://127.0.0.1:8080/problems"
    # public_url was configured (not the listen address): links to upstreams are
    # rewritten to it, else to the Host each request came with (core/links.py).
    public_url_set: bool = False
    server: ServerConfig = field(default_factory=ServerConfig)  # capacity (config_server.py)


def _listen_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def parse_listen(value: str, key: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{key}: expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


def _rate_policy(section: Section, default_name: str) -> RatePolicy:
    limit = section.integer("limit", minimum=1)
    policy = RatePolicy(
        name=section.text("name", default_name),
        match=section.text("match", "*"),
        methods=frozenset(m.upper() for m in section.seq("methods")),
        limit=limit,
        period=section.duration("period", 1.0),
        burst=section.integer("burst", limit, minimum=1),
        on_exceed=section.choice("on_exceed", ("delay", "reject"), "reject"),
        max_delay=section.duration("max_delay", 10.0),
        shadow=section.flag("shadow", False),
        scope=section.choice("scope", ("account", "user"), "account"),
        margin=section.duration("margin", 0.0),
    )
    section.done()
    if policy.period <= 0:
        raise ConfigError(f"{section.key('period')}: must be positive")
    return policy


def _ratio(section: Section, name: str, default: float) -> float:
    value = section.raw(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError(f"{section.key(name)}: expected a number in (0, 1], got {value!r}")
    return float(value)


def _circuit(section: Section) -> CircuitPolicy:
    base = CircuitPolicy()
    policy = CircuitPolicy(
        failures=section.integer("failures", base.failures, minimum=1),
        failure_ratio=_ratio(section, "failure_ratio", base.failure_ratio),
        window=section.duration("window", base.window),
        min_calls=section.integer("min_calls", base.min_calls, minimum=1),
        open_for=section.duration("open_for", base.open_for),
        half_open_probes=section.integer("half_open_probes", base.half_open_probes, minimum=1),
    )
    for key in ("window", "open_for"):
        if getattr(policy, key) <= 0:
            raise ConfigError(f"{section.key(key)}: must be positive")
    section.done()
    return policy


def _retry(section: Section) -> RetryPolicy:
    base = RetryPolicy()
    methods = section.seq("methods") if "methods" in section.data else sorted(base.methods)
    statuses = section.seq("statuses") if "statuses" in section.data else sorted(base.statuses)
    if not all(isinstance(s, int) and 500 <= s <= 599 for s in statuses):
        raise ConfigError(f"{section.key('statuses')}: expected a list of 5xx statuses")
    budget = section.section("budget")
    policy = RetryPolicy(
        methods=frozenset(str(m).upper() for m in methods),
        attempts=section.integer("attempts", base.attempts, minimum=1),
        statuses=frozenset(statuses),
        retry_429=section.flag("retry_429", base.retry_429),
        backoff_base=section.duration("backoff_base", base.backoff_base),
        backoff_max=section.duration("backoff_max", base.backoff_max),
        deadline=section.duration("deadline", base.deadline),
        budget_ratio=_ratio(budget, "ratio", base.budget_ratio),
        budget_window=budget.duration("window", base.budget_window),
        budget_min=budget.integer("min", base.budget_min),
    )
    budget.done()
    for key in ("backoff_base", "backoff_max", "deadline"):
        if getattr(policy, key) <= 0:
            raise ConfigError(f"{section.key(key)}: must be positive")
    if policy.budget_window <= 0:
        raise ConfigError(f"{budget.key('window')}: must be positive")
    section.done()
    return policy


def _base_url(section: Section) -> str:
    base_url = section.text("base_url").rstrip("/")
    url = URL(base_url)
    if url.scheme not in ("http", "https") or not url.host or url.query_string or url.fragment:
        raise ConfigError(f"{section.key('base_url')}: expected an http(s) URL without query")
    if url.raw_user is not None or url.raw_password is not None:
        # It would reach span attributes (url.full), logs and exception texts.
        raise ConfigError(
            f"{section.key('base_url')}: no user:password@ in a base_url "
            "(the upstream's credentials go in auth:)"
        )
    return base_url


def _policies(
    name: str, section: Section, defaults: tuple[Any, ...], problems: Problems
) -> tuple[RatePolicy, ...]:
    # No `rate_limits` key: the upstream's documented defaults. `rate_limits: []`: none.
    limits = section.seq("rate_limits") if "rate_limits" in section.data else list(defaults)
    policies = []
    for i, item in enumerate(limits):
        sub = section.child(item, f"{section.key('rate_limits')}[{i}]")
        with problems.guard():
            policies.append(_rate_policy(sub, f"{name}_{i}"))
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise ConfigError(f"{section.key('rate_limits')}: policy names must be unique")
    return tuple(policies)


def _upstream(name: str, section: Section, default_body: int, problems: Problems) -> UpstreamConfig:
    if name in RESERVED_NAMES:  # routed before the catch-all /{upstream}/{path}
        raise ConfigError(
            f"{section.path}: /{name} is one of the gateway's own paths "
            f"({', '.join(sorted(RESERVED_NAMES))}): no upstream may be named so"
        )
    spec = REGISTRY.get(name)
    if spec is None:
        raise ConfigError(f"{section.path}: unknown upstream (known: {', '.join(REGISTRY)})")
    base_url = problems.attempt(lambda: _base_url(section), "")
    timeouts = section.section("timeouts")
    connect = timeouts.duration("connect", 2.0)
    pool = timeouts.duration("pool", 1.0)
    if "total" in timeouts.data and "head" in timeouts.data:
        problems.add(f"{timeouts.key('total')}: the former name of head; set only head")
    # `total` is the former name of `head`: it never bounded the body (a healthy
    # download is never cut), so it is still read as `head`.
    head = timeouts.duration("head", timeouts.duration("total", 30.0))
    idle = timeouts.duration("idle", 30.0)
    timeouts.done()
    if min(connect, pool, head, idle) <= 0:
        problems.add(f"{timeouts.path}: timeouts must be positive")
    no_policies: tuple[RatePolicy, ...] = ()
    policies = problems.attempt(
        lambda: _policies(name, section, spec.default_limits, problems), no_policies
    )
    auth_section = section.section("auth")
    auth = problems.attempt(lambda: spec.parse_auth(auth_section), None)
    circuit = (
        problems.attempt(lambda: _circuit(section.section("circuit")), None)
        if "circuit" in section.data
        else None
    )
    retry = (
        problems.attempt(lambda: _retry(section.section("retry")), None)
        if "retry" in section.data
        else None
    )
    cfg = UpstreamConfig(
        name=name,
        base_url=base_url,
        connect_timeout=connect,
        head_timeout=head,
        pool_timeout=pool,
        idle_timeout=idle,
        pool_size=section.integer("pool_size", 100, minimum=1),
        max_body_bytes=section.integer("max_body_bytes", default_body, minimum=1),
        auth=auth,
        rate_limits=policies,
        circuit=circuit,
        retry=retry,
    )
    section.done()
    return cfg


def _absolute_url(section: Section, name: str, default: str) -> str:
    """An absolute http(s) URL without query or fragment, trailing ``/`` removed."""
    value = (section.optional_str(name) or default).rstrip("/")
    url = URL(value)
    if url.scheme not in ("http", "https") or not url.host or url.query_string or url.fragment:
        raise ConfigError(f"{section.key(name)}: expected an absolute http(s) URL, got {value!r}")
    return value


def _problem_base_url(root: Section, public_url: str) -> str:
    """``problem_base_url``, by default ``<public_url>/problems``; nothing more to
    report when that default comes from a ``public_url`` already reported wrong."""
    if not public_url and root.optional_str("problem_base_url") is None:
        return ""
    return _absolute_url(root, "problem_base_url", public_url + "/problems")


def _listen(env: Mapping[str, str], var: str, value: str | None, key: str) -> Any:
    """``host:port`` from the variable ``var`` if set, else the file's ``key``; an error
    names whichever the value came from."""
    if env.get(var):
        return parse_listen(env[var], var)
    return parse_listen(value, key) if value else None


_NO_REDIS = RedisConfig(None, 0.05, "local", 1, "gw", 1.0)


def _redis(redis: Section) -> RedisConfig:
    redis_url = redis.optional_str("url")
    cfg = RedisConfig(
        url=Secret(redis_url) if redis_url else None,
        timeout=redis.duration("timeout", 0.05),
        on_error=redis.choice("on_error", ("local", "open", "closed"), "local"),
        replicas=redis.integer("replicas", 1, minimum=1),
        key_prefix=redis.text("key_prefix", "gw"),
        probe_interval=redis.duration("probe_interval", 1.0),
        batch=redis.flag("batch", True),
        shared_sessions=redis.flag("shared_sessions", True),
        session_lock_ttl=redis.duration("session_lock_ttl", 5.0),
        session_wait=redis.duration("session_wait", 15.0),
    )
    redis.done()  # every other key is checked before a bad URL ends this section
    if cfg.session_lock_ttl < 0.1:
        raise ConfigError(f"{redis.key('session_lock_ttl')}: must be at least 100ms")
    if cfg.session_wait <= 0:
        raise ConfigError(f"{redis.key('session_wait')}: must be positive")
    if redis_url is not None:  # the scheme chooses single, cluster or sentinel (errors: redis.url)
        cfg = replace(cfg, mode=parse_redis_url(redis_url).mode)
    return cfg


def parse_config(data: Any, env: Mapping[str, str]) -> GatewayConfig:
    """The frozen config, or one ``ConfigError`` listing every problem found."""
    problems = Problems()
    cfg = problems.attempt(lambda: _parse(data, env, problems), None)
    problems.raise_if_any()  # a parser that could not go on left its error here too
    assert cfg is not None
    return cfg


def _parse(data: Any, env: Mapping[str, str], problems: Problems) -> GatewayConfig:
    root = Section(interpolate(data, env, "", problems), "", problems)
    listen = problems.attempt(
        lambda: _listen(env, "GATEWAY_LISTEN", root.text("listen", DEFAULT_LISTEN), "listen"),
        ("127.0.0.1", 8080),
    )
    host, port = listen
    ops_listen = problems.attempt(
        lambda: _listen(env, "GATEWAY_OPS_LISTEN", root.optional_str("ops_listen"), "ops_listen"),
        None,
    )
    onboarding_listen = problems.attempt(
        lambda: _listen(
            env,
            "GATEWAY_ONBOARDING_LISTEN",
            root.optional_str("onboarding_listen"),
            "onboarding_listen",
        ),
        None,
    )
    max_body = root.integer("max_body_bytes", 10 * 1024 * 1024, minimum=1)
    redis = root.section("redis")
    redis_cfg = problems.attempt(lambda: _redis(redis), _NO_REDIS)

    log = root.section("log")
    log_level = log.choice("level", ("debug", "info", "warning", "error"), "info")
    log_format = log.choice("format", ("auto", "json", "console"), "auto")
    log.done()

    no_callers: tuple[CallerToken, ...] = ()
    caller_tokens = problems.attempt(lambda: parse_callers(root.section("callers")), no_callers)
    allow_open = root.flag("allow_unauthenticated_callers", False)
    source = "GATEWAY_LISTEN" if env.get("GATEWAY_LISTEN") else "listen"
    with problems.guard():
        check_exposure(source, host, port, caller_tokens, allow_open)

    upstreams = {}
    for name, sec in root.section("upstreams").items():
        with problems.guard():
            upstreams[name] = _upstream(name, sec, max_body, problems)
    if not upstreams and not problems.messages:
        problems.add("upstreams: at least one upstream is required")
    largest_body = max([max_body, *(u.max_body_bytes for u in upstreams.values())])
    server_section = root.section("server")
    server = problems.attempt(
        lambda: parse_server(server_section, largest_body, env), ServerConfig()
    )

    public_url = problems.attempt(
        lambda: _absolute_url(root, "public_url", _listen_url(host, port)), ""
    )
    cfg = GatewayConfig(
        listen_host=host,
        listen_port=port,
        max_body_bytes=max_body,
        shutdown_grace=root.duration("shutdown_grace", 20.0),
        log_level=log_level,
        log_format=log_format,
        caller_tokens=caller_tokens,
        redis=redis_cfg,
        upstreams=upstreams,
        token_store_key=root.optional_secret("token_store_key"),
        public_url=public_url,
        ops_listen=ops_listen,
        onboarding_listen=onboarding_listen,
        problem_base_url=problems.attempt(lambda: _problem_base_url(root, public_url), ""),
        public_url_set=root.optional_str("public_url") is not None,
        server=server,
    )
    root.done()
    if redis_cfg.url is not None and redis_cfg.shared_sessions and cfg.token_store_key is None:
        problems.add(
            "token_store_key: required when upstream sessions are shared through Redis "
            "(redis.url is set and redis.shared_sessions is true): they are encrypted with it. "
            "Set GATEWAY_TOKEN_STORE_KEY, or redis.shared_sessions: false"
        )
    return cfg


def load_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> GatewayConfig:
    env = environ() if env is None else env
    file = Path(path or env.get("GATEWAY_CONFIG") or DEFAULT_CONFIG)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"config file {file}: {exc.strerror}") from None
    return parse_config(parse_yaml(text, str(file)), env)
