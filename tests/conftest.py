"""Shared fixtures: a real Redis, the real stand-ins, gateway apps and processes."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis as redis_sync
from aiohttp.test_utils import TestClient

from gateway.config import GatewayConfig, load_config
from gateway.server.app import create_app
from tests.harness import CONFIG, Standins, gateway_env, launch_standins, start_redis

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "gateway" / "schemas" / "problem.json"
# Every problem+json body any test reads or the in-process gateway makes is validated.
pytest_plugins = ["tests.problem_check"]


# End-to-end tests (real gateway/stand-in/Redis processes, or real client
# libraries over loopback) carry the ``e2e`` marker, so ``pytest -m "not e2e"``
# is the fast loop (README, "Tests"). Files elsewhere mark themselves.
_E2E_DIRS = ("e2e", "fleet", "clients")
_E2E_FILES = (
    "ops/test_devrun.py",
    "ops/test_ops_listener.py",
    "ops/test_shutdown.py",
    "ops/test_container.py",
    "ops/test_observability_live.py",
    "tracing/test_bench_tracing.py",
    "tracing/test_otlp_export.py",
)
_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            rel = item.path.resolve().relative_to(_TESTS).as_posix()
        except ValueError:
            continue
        if rel.split("/", 1)[0] in _E2E_DIRS or rel in _E2E_FILES:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``REDIS_URL`` when set (``make test`` leaves it to us), else a throwaway server."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = start_redis()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_flushed(redis_url: str) -> str:
    client = redis_sync.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return redis_url


@pytest.fixture(scope="session")
def standins() -> Iterator[Standins]:
    # Each gateway the suite starts logs in to Beeswax (one session per tenant), far
    # more often than the stand-in's 10 logins/minute; that limit and the gateway's
    # back-off are tested with their own stand-ins (tests/e2e/test_auth_beeswax.py).
    s = launch_standins({"beeswax": {"login_limit_per_minute": 10_000}})
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def fresh_standins(standins: Standins) -> Standins:
    standins.reset()
    return standins


def make_config(standins: Standins, path: Path | str = CONFIG, **env: str) -> GatewayConfig:
    return load_config(path, gateway_env(standins, **env))


@pytest.fixture
async def gateway_client(
    aiohttp_client: Any, fresh_standins: Standins
) -> AsyncIterator[TestClient[Any, Any]]:
    """The gateway app in-process (real HTTP over loopback to the real stand-ins)."""
    app = create_app(make_config(fresh_standins))
    client = await aiohttp_client(app)
    yield client


# Every problem+json body the suite sees is validated against the shipped schema.
_problem_schema: dict[str, Any] | None = None


def assert_problem(body: bytes | str | dict[str, Any], status: int | None = None) -> dict[str, Any]:
    global _problem_schema
    if _problem_schema is None:
        _problem_schema = json.loads(SCHEMA_PATH.read_text())
    data = body if isinstance(body, dict) else json.loads(body)
    jsonschema.validate(data, _problem_schema)
    if status is not None:
        assert data["status"] == status, data
    return data


async def problem_reply(resp: Any, status: int, upstream: str | None) -> dict[str, Any]:
    """An aiohttp reply that must be a valid problem of ``status`` from ``upstream``."""
    assert resp.status == status
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    problem = assert_problem(await resp.read(), status)
    assert problem["request_id"] == resp.headers["X-Request-Id"]
    assert problem["upstream"] == upstream
    return problem
