"""``redis.url``: which Redis deployment the gateway talks to (``docs/fleet.md``).

Three modes, chosen by the URL scheme so that ``REDIS_URL`` alone selects one:

- single:   ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS),
            ``unix:///path/to/socket[?db=N]``
- cluster:  ``redis+cluster://[[user]:password@]host:port[,host:port...]``
            (``rediss+cluster://`` for TLS): any reachable nodes as seeds; the
            client discovers the rest and follows failovers (redis-py's
            ``RedisCluster``). A cluster has no databases: no ``/db``.
- sentinel: ``redis+sentinel://[[user]:password@]host:port[,host:port...]/<service>[/db]``
            (``rediss+sentinel://``): the sentinels, and the name of the primary
            they manage; the password is the data nodes' (redis-py's ``Sentinel``).

Parsed once at start-up; every error names ``redis.url`` and never repeats it
(it may carry a password).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from gateway.errors import ConfigError

MODES = {"redis": "single", "rediss": "single", "unix": "single"}
for _scheme in ("redis", "rediss"):
    for _mode in ("cluster", "sentinel"):
        MODES[f"{_scheme}+{_mode}"] = _mode


@dataclass(frozen=True)
class RedisTarget:
    mode: str  # "single" | "cluster" | "sentinel"
    tls: bool
    nodes: tuple[tuple[str, int], ...] = ()  # cluster seeds or sentinels
    username: str | None = None
    password: str | None = None
    service: str = ""  # sentinel: the primary's name
    db: int = 0


def _fail(why: str) -> ConfigError:
    return ConfigError(f"redis.url: {why}")


def _nodes(netloc: str) -> tuple[tuple[str, int], ...]:
    nodes = []
    for part in netloc.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _fail("expected host:port[,host:port...] for a cluster or sentinels")
        nodes.append((host.strip("[]"), int(port)))
    return tuple(nodes)


def _check_single(scheme: str, url: str) -> None:
    """What redis-py's ``from_url`` would refuse only at start-up: a port that is
    not one, a database that is not a number (``/db`` or ``?db=``)."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (urllib checks the port when it is read)
    except ValueError:
        raise _fail("the port must be a number from 1 to 65535") from None
    dbs = [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k == "db"]
    if scheme != "unix" and parts.path.strip("/"):
        dbs.append(unquote(parts.path.strip("/")))
    if any(not db.isdigit() for db in dbs):
        raise _fail("the database must be a number (redis://host:port/<db>)")


def parse_redis_url(url: str) -> RedisTarget:
    scheme, sep, rest = url.partition("://")
    mode = MODES.get(scheme.lower()) if sep else None
    if mode is None:
        raise _fail("expected redis://, rediss://, unix://, redis+cluster:// or redis+sentinel://")
    tls = scheme.lower().startswith("rediss")
    if mode == "single":
        _check_single(scheme.lower(), url)
        return RedisTarget("single", tls)
    userinfo, at, hosts_path = rest.rpartition("@")
    netloc, _, path = hosts_path.partition("/")
    if "?" in path or "?" in netloc or "#" in hosts_path:
        raise _fail("no query or fragment in a cluster or sentinel URL")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = _nodes(netloc)
    segments = [s for s in path.split("/") if s]
    if mode == "cluster":
        if segments:
            raise _fail("a Redis Cluster has no databases: no /db in redis+cluster://")
        return RedisTarget("cluster", tls, nodes, username, password)
    if not segments or len(segments) > 2:
        raise _fail("expected redis+sentinel://host:port[,host:port...]/<service>[/db]")
    db = segments[1] if len(segments) == 2 else "0"
    if not db.isdigit():
        raise _fail("the sentinel database must be a number")
    return RedisTarget("sentinel", tls, nodes, username, password, unquote(segments[0]), int(db))
