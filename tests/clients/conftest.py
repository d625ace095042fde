"""Real client libraries with their default settings, against real processes.

A gateway process in front of the four stand-in processes, configured so that
every renewal can happen: BizzStream tokens from the stand-in's OAuth 2 grant
(renewed on ``token_expired``), a StreamOne session (renewed on status 282) and
the Beeswax session login (renewed on 401). Every test runs once with
``requests`` and once with ``httpx``, each left exactly as an application
would build it (``requests.Session()``, ``httpx.Client()``): both send
``Accept-Encoding: gzip, deflate`` and decompress what comes back, and the
stand-ins gzip every JSON reply such a client accepts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from tests.harness import Gateway, Standins, gateway_env, launch_gateway, write_config

ENV = {
    "BIZZ_CLIENT_SECRET": "standin-client-secret",
    "STREAMONE_PSK": "apppsk",
    "ALICE_PASSWORD": "alice-password",
}


def _config(data: dict[str, Any]) -> None:
    ups = data["upstreams"]
    ups["bizzstream"]["auth"] = {
        "client_credentials": {
            "token_url": "${BIZZSTREAM_URL}/oauth/token",
            "client_id": "standin-client",
            "client_secret": "${BIZZ_CLIENT_SECRET}",
            "scope": "documents",
        },
        "environment_id": "${BIZZSTREAM_ENVIRONMENT_ID}",
    }
    # Both libraries' runs expire the session within seconds: every 401 may log in.
    ups["beeswax"]["auth"]["min_login_interval"] = 0
    ups["streamone"]["auth"] = {
        "auth_type": "application",
        "actor_id": "application",
        "psk": "${STREAMONE_PSK}",
        "session": {"user": "alice", "password": "${ALICE_PASSWORD}"},
    }


@pytest.fixture(scope="package")
def gateway(standins: Standins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = write_config(Path(tmp_path_factory.mktemp("clients")), _config)
    gw = launch_gateway(gateway_env(standins, **ENV), config)
    try:
        yield gw
    finally:
        gw.stop()
        os.unlink(gw.log_path)


@dataclass
class Reply:
    """What the application saw, plus the bytes that came over the wire."""

    status: int
    headers: dict[str, str]  # lower-cased names
    content: bytes  # as the library hands it to the application (decoded)


class Caller:
    """One client library, used the way an application would, on one gateway."""

    def __init__(self, kind: str, base: str) -> None:
        self.kind = kind
        self.base = base
        if kind == "requests":
            self._requests = requests.Session()
        else:
            self._httpx = httpx.Client(timeout=30)

    def call(self, method: str, path: str, **kw: Any) -> Reply:
        url = path if path.startswith("http") else self.base + path
        if self.kind == "requests":
            r = self._requests.request(method, url, timeout=30, **kw)
            return Reply(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)
        h = self._httpx.request(method, url, **kw)
        return Reply(h.status_code, {k.lower(): v for k, v in h.headers.items()}, h.content)

    def raw(self, method: str, path: str, **kw: Any) -> tuple[dict[str, str], bytes]:
        """The reply's headers and its body exactly as sent (not decompressed, and
        not a redirect's target)."""
        url = self.base + path
        if self.kind == "requests":
            kw.setdefault("allow_redirects", False)
            with self._requests.request(method, url, stream=True, timeout=30, **kw) as r:
                body = r.raw.read(decode_content=False)
                return {k.lower(): v for k, v in r.headers.items()}, body
        with self._httpx.stream(method, url, **kw) as h:
            body = b"".join(h.iter_raw())
            return {k.lower(): v for k, v in h.headers.items()}, body

    def close(self) -> None:
        if self.kind == "requests":
            self._requests.close()
        else:
            self._httpx.close()


@pytest.fixture(params=["requests", "httpx"])
def client(request: pytest.FixtureRequest, gateway: Gateway) -> Iterator[Caller]:
    caller = Caller(request.param, gateway.url)
    try:
        yield caller
    finally:
        caller.close()
