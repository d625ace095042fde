"""BizzStream token renewal end to end: real stand-in and gateway processes.

Acceptance (issue 3): renewal after ``token_expired``, with the file provider and
with the OAuth 2 client-credentials provider (the stand-in's ``POST /oauth/token``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_problem
from tests.e2e.auth_support import call, renewals, write_config
from tests.harness import Gateway, Standins, gateway_env, launch_standins, running_gateway

DOCS = "/bizzstream/api/v1/documents?ddName=orders"


@pytest.fixture(scope="module")
def bizz() -> Iterator[Standins]:
    standins = launch_standins()
    yield standins
    standins.stop()


@pytest.fixture
def fresh(bizz: Standins) -> Standins:
    bizz.admin("bizzstream", "/__standin/settings",
               {"tokens": ["standin-bizz-token"], "expired_tokens": []})  # fmt: skip
    bizz.reset()
    return bizz


def tokens_sent(standins: Standins) -> list[str]:
    return [
        s["headers"].get("Authorization", "").removeprefix("Bearer ")
        for s in standins.seen("bizzstream")
        if s["path"].startswith("/api/")
    ]


def test_file_token_is_reread_after_token_expired(fresh: Standins, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token-1\n")
    fresh.admin("bizzstream", "/__standin/settings", {"tokens": ["file-token-1", "file-token-2"]})

    def change(data: dict[str, Any]) -> None:
        data["upstreams"]["bizzstream"]["auth"] = {
            "token_file": str(token_file),
            "token_file_check_interval": "1h",  # only token_expired makes it re-read here
            "environment_id": "${BIZZSTREAM_ENVIRONMENT_ID}",
        }

    with running_gateway(gateway_env(fresh), write_config(tmp_path, change)) as gw:
        assert call(gw, "GET", DOCS)[0] == 200
        # The secret is rotated: the old token now expires, the file holds the new one.
        fresh.admin("bizzstream", "/__standin/settings", {"expired_tokens": ["file-token-1"]})
        token_file.write_text("file-token-2\n")
        body = json.dumps({"n": 1}).encode()
        status, _, reply = call(gw, "POST", DOCS, body, {"Content-Type": "application/json"})
        assert status == 201, reply  # refused, renewed, and the POST replayed once
        assert fresh.stats("bizzstream").get("token_expired", 0) == 1
        assert tokens_sent(fresh) == ["file-token-1", "file-token-1", "file-token-2"]
        assert [s["body"] for s in fresh.seen("bizzstream")][-2:] == [body.decode()] * 2
        assert renewals(gw, "bizzstream") == 1

        # Expired again, and the file has nothing newer: one replay at most, then 502.
        fresh.admin("bizzstream", "/__standin/settings",
                    {"expired_tokens": ["file-token-1", "file-token-2"]})  # fmt: skip
        fresh.reset()
        _, _, reply = call(gw, "GET", DOCS)
        assert assert_problem(reply, 502)["code"] == "upstream_auth_failed"
        assert fresh.stats("bizzstream").get("requests", 0) == 1
        assert renewals(gw, "bizzstream", "error") == 1


def test_client_credentials_grant_and_renewal_after_token_expired(
    fresh: Standins, tmp_path: Path
) -> None:
    def change(data: dict[str, Any]) -> None:
        data["upstreams"]["bizzstream"]["auth"] = {
            "client_credentials": {
                "token_url": "${BIZZSTREAM_URL}/oauth/token",
                "client_id": "standin-client",
                "client_secret": "${BIZZ_CLIENT_SECRET}",
                "scope": "documents",
            },
            "environment_id": "${BIZZSTREAM_ENVIRONMENT_ID}",
        }

    env = gateway_env(fresh, BIZZ_CLIENT_SECRET="standin-client-secret")
    with running_gateway(env, write_config(tmp_path, change)) as gw:
        assert call(gw, "GET", DOCS)[0] == 200
        assert call(gw, "GET", DOCS)[0] == 200
        stats = fresh.stats("bizzstream")
        assert stats.get("token_grants", 0) == 1  # fetched once, then reused
        granted = tokens_sent(fresh)[-1]
        assert granted and granted != "standin-bizz-token"

        fresh.admin("bizzstream", "/__standin/settings", {"expired_tokens": [granted]})
        assert call(gw, "GET", DOCS)[0] == 200
        stats = fresh.stats("bizzstream")
        assert (stats.get("token_expired"), stats.get("token_grants")) == (1, 2)
        assert tokens_sent(fresh)[-1] not in (granted, "")
        assert renewals(gw, "bizzstream") == 2
        assert stats.get("auth_failures", 0) == 0 and stats.get("token_grant_failures", 0) == 0


@pytest.fixture(scope="module")
def gateway(bizz: Standins) -> Iterator[Gateway]:
    with running_gateway(gateway_env(bizz)) as gw:
        yield gw


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_static_token_expired_is_upstream_auth_failed_without_a_pointless_replay(
    gateway: Gateway, fresh: Standins, method: str
) -> None:
    """A POST's body is streamed, not buffered, under a static token (it can
    never be replayed): the refusal is the same, and so is its count as a failed
    renewal (before: a POST's refusal was not counted in gateway_auth_renewals_total)."""
    fresh.admin("bizzstream", "/__standin/settings", {"expired_tokens": ["standin-bizz-token"]})
    before = renewals(gateway, "bizzstream", "error")
    body = b'{"n": 1}' if method == "POST" else None
    headers = {"Content-Type": "application/json"} if body else {}
    _, _, reply = call(gateway, method, DOCS, body, headers)
    problem = assert_problem(reply, 502)
    assert problem["code"] == "upstream_auth_failed"
    assert problem["detail"] == (
        "bizzstream says the configured static token expired; it cannot be renewed"
    )
    assert fresh.stats("bizzstream").get("requests", 0) == 1
    assert renewals(gateway, "bizzstream", "error") == before + 1


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_every_method_is_accepted(gateway: Gateway, fresh: Standins, method: str) -> None:
    json_type = {"Content-Type": "application/json"}
    created = json.dumps({"_id": f"doc-{method}", "n": 1}).encode()
    assert call(gateway, "POST", DOCS, created, json_type)[0] == 201
    path = DOCS if method in ("GET", "POST") else f"{DOCS}&_id=doc-{method}"
    body = None if method in ("GET", "DELETE") else json.dumps({"n": 2}).encode()
    status, _, reply = call(gateway, method, path, body, json_type if body else {})
    assert status in (200, 201), reply
    assert fresh.stats("bizzstream").get("auth_failures", 0) == 0
