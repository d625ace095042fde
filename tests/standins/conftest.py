"""Fixtures that serve one stand-in app on a local port for a test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from gateway.standins import beeswax, bizzstream

Client = TestClient[Any, Any]
ClientFactory = Callable[[dict[str, Any] | None], Awaitable[Client]]


@pytest.fixture
def bizz_factory(aiohttp_client: AiohttpClient) -> ClientFactory:
    """Start a BizzStream stand-in with extra settings and return a client for it."""

    async def start(settings: dict[str, Any] | None = None) -> Client:
        return await aiohttp_client(bizzstream.create_app(settings))

    return start


@pytest.fixture
def bees_factory(aiohttp_client: AiohttpClient) -> ClientFactory:
    """Start a Beeswax stand-in with extra settings and return a client for it."""

    async def start(settings: dict[str, Any] | None = None) -> Client:
        return await aiohttp_client(beeswax.create_app(settings))

    return start


@pytest.fixture
async def bizz(bizz_factory: ClientFactory) -> Client:
    return await bizz_factory(None)


@pytest.fixture
async def bees(bees_factory: ClientFactory) -> Client:
    return await bees_factory(None)
