"""The reserved paths: one table (gateway/core/reserved.py) that the routes, caller
authentication, the access log and the config validation all read."""

from __future__ import annotations

import pytest

from gateway.config import load_config
from gateway.core.reserved import QUIET, RESERVED_NAMES, TABLE, is_open
from gateway.devrun import STANDIN_CREDENTIALS
from gateway.server.app import create_app
from tests.harness import CONFIG

CATCH_ALL = {"/{upstream}", r"/{upstream}/{tail}"}


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/readyz", "/metrics", "/problems", "/problems/forbidden",
     "/oauth/buzzstream/callback", "/oauth/another/callback"],
)  # fmt: skip
def test_open_paths_need_no_caller_token(path: str) -> None:
    assert is_open(path)


@pytest.mark.parametrize(
    "path",
    ["/oauth/buzzstream/start", "/oauth/buzzstream/callback/more", "/oauth//callback",
     "/oauth/a/b/callback", "/problemsx", "/buzzstream/websites", "/healthz/x", "/",
     # a decoded %0A at the end: `$` would match before it; these reach the proxy route
     "/healthz\n", "/oauth/buzzstream/callback\n", "/readyz\n"],
)  # fmt: skip
def test_other_paths_need_one(path: str) -> None:
    assert not is_open(path)


def test_names_and_quiet_paths_come_from_the_table() -> None:
    assert RESERVED_NAMES == {"healthz", "readyz", "metrics", "oauth", "problems"}
    assert QUIET == {"/healthz", "/readyz", "/metrics"}


def test_every_route_before_the_catch_all_is_in_the_table() -> None:
    env = dict(STANDIN_CREDENTIALS)
    for name in ("BIZZSTREAM", "BEESWAX", "BUZZSTREAM", "STREAMONE"):
        env[f"{name}_URL"] = "http://127.0.0.1:9"
    app = create_app(load_config(CONFIG, env))
    routes = {r.canonical for r in app.router.resources()} - CATCH_ALL
    assert routes, "no reserved route registered"
    table = {p.route for p in TABLE}
    prefixes = tuple(p.route + "/" for p in TABLE if p.prefix)
    assert {r for r in routes if r not in table and not r.startswith(prefixes)} == set()
    assert {p.route for p in TABLE} <= routes
