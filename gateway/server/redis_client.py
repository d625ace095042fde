"""Redis clients, made in one place from ``redis.url``: a single server, a Redis
Cluster or a Sentinel-managed primary (:mod:`gateway.redis_url`, ``docs/fleet.md``).

- cluster: redis-py's ``RedisCluster`` with the URL's nodes as seeds. It routes
  each command by its key's slot (every key of one limiter decision or one
  session shares a hash tag, so each script runs on one node), groups a
  pipeline per node, and follows ``MOVED``/failovers by reloading the slots.
- sentinel: redis-py's ``Sentinel``; ``master_for`` asks the sentinels for the
  primary on every new connection, so after a promotion the next connection
  goes to the new primary without a restart.

Every command has ``timeout`` seconds (the limiter's 50 ms, the sessions' 1 s);
redis-py's own retries stay off where it allows: the gateway's callers decide
what a failure means (fallback, breaker, login alone).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.config import RedisConfig
from gateway.metrics import Metrics
from gateway.redis_url import parse_redis_url

# What a Redis command raises when the server is down, slow, failing over or
# refusing: redis-py's errors, a socket's, and a timeout (redis-py's or
# redis_time.within's). The one list every caller catches.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError, TimeoutError)

# The token store and the shared upstream sessions use their own, patient client:
# they read credentials, for which no fallback answer exists (a replica that gave
# up after the limiter's 50 ms would answer 503, or log in on its own: one more
# login). The limiter keeps redis.timeout, and its fallback.
SESSION_TIMEOUT = 1.0


class RedisUnavailable(Exception):
    """Redis failed, timed out or refused a command; names only the error type."""


def redis_failed(exc: BaseException, metrics: Metrics | None) -> str:
    """One Redis failure: counted in ``gateway_redis_errors_total``, and named by
    its type alone (the text of a Redis error may carry a host, a key or a reply),
    which is all a log line or a translated error says of it."""
    if metrics is not None:
        metrics.redis_errors.inc()
    return type(exc).__name__


# What connect() gives: a plain or Sentinel-master client, or a cluster client.
RedisClient = aioredis.Redis | RedisCluster


def connect(config: RedisConfig, timeout: float) -> RedisClient:
    """A client for ``config.url`` whose every command has ``timeout`` seconds."""
    assert config.url is not None
    url = config.url.reveal()
    target = parse_redis_url(url)
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    if target.mode == "cluster":
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            username=target.username,
            password=target.password,
            ssl=target.tls,
            # One try per command: a failover is the breaker's and the
            # fallback's business, not a hidden wait inside a 50 ms decision.
            retry=Retry(NoBackoff(), 0),
            **common,
        )
    if target.mode == "sentinel":
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            target.nodes,
            sentinel_kwargs={**common},
            username=target.username,
            password=target.password,
            ssl=target.tls,
            db=target.db,
            **common,
        )
        master: aioredis.Redis = sentinel.master_for(
            target.service, retry_on_timeout=False, **common
        )
        return master
    return aioredis.Redis.from_url(url, retry_on_timeout=False, health_check_interval=0, **common)
