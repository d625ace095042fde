"""No secret ever appears in logs, metrics, error bodies or exported spans
(docs/contract.md §4, issues 3 and 15).

One full run of a real gateway process (debug logging, Redis, caller
authentication) against real stand-ins whose credentials are distinctive
strings. Every secret of the test config is used by at least one call, on
success and on failure paths (refused logins, expired tokens, unknown tokens,
bad signatures, renewals, the 3-legged onboarding). Then the captured log, the
``/metrics`` output and every error body are scanned for every secret, in clear,
percent-encoded and base64 (Basic) forms, plus the credentials the upstreams
minted during the run (session cookies, granted and access tokens). Tracing is
on: every span the gateway exported to a real OTLP/HTTP receiver on loopback is
scanned too, raw protobuf and decoded (the exporter's own header is a secret).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.e2e.auth_support import call, write_config
from tests.harness import Standins, free_port, gateway_env, launch_standins, running_gateway
from tests.tracing.otlp_receiver import otlp_receiver

SECRETS = {
    "CALLER_TOKEN": "CALLER-SECRET-4d9e2f1b",
    "GATEWAY_TOKEN_STORE_KEY": "TS-key-SECRET-8e4b2a6d",
    "BIZZSTREAM_TOKEN": "BZ-static-SECRET-7f3a9c",
    "BZ_CLIENT_SECRET": "BZ-client-SECRET-2b8e1d",
    "BZ_DANA_TOKEN": "BZ-dana-SECRET-expired-5c4",
    "BEESWAX_PASSWORD": "BW-password-SECRET-9d2f4e",
    "BW_ERIN": "BW-erin-SECRET-1a7c3b",
    "BW_FRANK": "BW-frank-wrong-SECRET-6e9",
    "BUZZSTREAM_CONSUMER_SECRET": "BS-consumer-SECRET-4c1d8a",
    "BS_GINA_TOKEN": "BS-gina-token-SECRET-3f0",
    "BS_GINA_SECRET": "BS-gina-tsecret-SECRET-8b",
    "STREAMONE_PSK": "SO-psk-SECRET-0e5b7c",
    "SO_APP": "SO-app-SECRET-5a2f9d",
    "SO_ALICE": "SO-alice-pw-SECRET-7d3e",
    "SO_HANK": "SO-hank-wrong-SECRET-2c",
}
OTLP_KEY = "OTLP-key-SECRET-6f1a0c"
STANDIN_SETTINGS: dict[str, Any] = {
    "bizzstream": {
        "tokens": [SECRETS["BIZZSTREAM_TOKEN"]],
        "expired_tokens": [SECRETS["BZ_DANA_TOKEN"]],
        "client_secret": SECRETS["BZ_CLIENT_SECRET"],
    },
    "beeswax": {
        "password": SECRETS["BEESWAX_PASSWORD"],
        "users": {"erin@example.com": SECRETS["BW_ERIN"]},
        "login_limit_per_minute": 1000,
    },
    "buzzstream": {
        "consumers": {"standin-consumer-key": SECRETS["BUZZSTREAM_CONSUMER_SECRET"]},
        "rate_per_second": 1000,
    },
    "streamone": {
        "users": {"user": SECRETS["STREAMONE_PSK"]},
        "applications": {"application": SECRETS["SO_APP"]},
        "passwords": {"alice": SECRETS["SO_ALICE"]},
    },
}


def configure(data: dict[str, Any]) -> None:
    data["callers"] = {"tokens": [{"token": "${CALLER_TOKEN}", "users": "*"}]}
    data["token_store_key"] = "${GATEWAY_TOKEN_STORE_KEY}"
    up = data["upstreams"]
    up["bizzstream"]["auth"] = {
        "environment_id": "${BIZZSTREAM_ENVIRONMENT_ID}",
        "client_credentials": {
            "token_url": "${BIZZSTREAM_URL}/oauth/token",
            "client_id": "standin-client",
            "client_secret": "${BZ_CLIENT_SECRET}",
        },
        "users": {"dana": {"token": "${BZ_DANA_TOKEN}"}, "olga": {"token": "${BIZZSTREAM_TOKEN}"}},
    }
    up["beeswax"]["auth"]["users"] = {
        "erin": {"email": "erin@example.com", "password": "${BW_ERIN}"},
        "frank": {"email": "frank@example.com", "password": "${BW_FRANK}"},
    }
    up["buzzstream"]["auth"]["users"] = {
        "gina": {"token": "${BS_GINA_TOKEN}", "token_secret": "${BS_GINA_SECRET}"}
    }
    up["streamone"]["auth"]["users"] = {
        "hank": {"auth_type": "user", "actor_id": "user", "psk": "${SO_HANK}"},
        "ivy": {
            "auth_type": "application",
            "actor_id": "application",
            "psk": "${SO_APP}",
            "session": {"user": "alice", "password": "${SO_ALICE}"},
        },
    }


@pytest.fixture(scope="module")
def standins() -> Iterator[Standins]:
    s = launch_standins(STANDIN_SETTINGS)
    yield s
    s.stop()


def runtime_secrets(standins: Standins) -> set[str]:
    """Credentials the upstreams minted and the gateway sent during the run."""
    found: set[str] = set()
    for name in ("beeswax", "bizzstream", "buzzstream"):
        for seen in standins.seen(name):
            headers = {k.lower(): v for k, v in seen["headers"].items()}
            for part in headers.get("cookie", "").split(";"):
                if "=" in part:
                    found.add(part.split("=", 1)[1].strip())
            auth = headers.get("authorization", "")
            if auth.startswith("Bearer "):
                found.add(auth[7:])
            if 'oauth_token="' in auth:
                found.add(auth.split('oauth_token="', 1)[1].split('"', 1)[0])
    return {s for s in found if len(s) >= 8}


def test_no_secret_in_logs_metrics_or_error_bodies(
    standins: Standins, redis_url: str, tmp_path: Path
) -> None:
    otlp_port = free_port()
    env = gateway_env(
        standins, redis_url, GATEWAY_LOG_LEVEL="debug", **SECRETS,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp_port}",
        OTEL_EXPORTER_OTLP_HEADERS=f"x-api-key={OTLP_KEY}", OTEL_BSP_SCHEDULE_DELAY="50",
    )  # fmt: skip
    caller = {"Authorization": f"Bearer {SECRETS['CALLER_TOKEN']}"}
    bodies: list[bytes] = []
    statuses: dict[str, int] = {}

    def run(label: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, user: str | None = None) -> int:  # fmt: skip
        sent = {**caller, **(headers or {}), **({"X-Gateway-User": user} if user else {})}
        status, got, reply = call(gw, method, path, body, sent)
        statuses[label] = status
        if status >= 400 or got.get("content-type", "").startswith("application/problem"):
            bodies.append(reply)
        return status

    json_type = {"Content-Type": "application/json"}
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    with (
        otlp_receiver(otlp_port) as exported,
        running_gateway(env, write_config(tmp_path, configure)) as gw,
    ):
        docs = "/bizzstream/api/v1/documents?ddName=s"
        run("bizz grant", "GET", docs)
        run("bizz static user", "GET", docs, user="olga")
        run("bizz expired static user", "GET", docs, user="dana")
        granted = [s["headers"].get("Authorization", "")[7:] for s in standins.seen("bizzstream")]
        standins.admin("bizzstream", "/__standin/settings", {"expired_tokens": granted})
        run("bizz renewal", "POST", docs, b'{"a": 1}', json_type)

        run("bees login", "GET", "/beeswax/rest/advertiser")
        standins.admin("beeswax", "/__standin/expire_sessions")
        run("bees relogin", "GET", "/beeswax/rest/advertiser")
        run("bees erin", "GET", "/beeswax/rest/advertiser", user="erin")
        run("bees frank refused", "GET", "/beeswax/rest/advertiser", user="frank")
        run("bees 404", "GET", "/beeswax/rest/advertiser/999")

        run("buzz 2-legged", "POST", "/buzzstream/websites", b"url=https%3A%2F%2Fs.example",
            form_type)  # fmt: skip
        run("buzz gina unknown token", "GET", "/buzzstream/websites", user="gina")
        _, got, _ = call(gw, "GET", "/oauth/buzzstream/start?user=jack", None, caller)
        approve = urlsplit(got["location"])
        _, got, _ = call(f"http://{approve.netloc}", "GET",
                         f"{approve.path}?{approve.query}&user=buzz-jack")  # fmt: skip
        back = urlsplit(got["location"])
        statuses["buzz callback"] = call(gw, "GET", f"{back.path}?{back.query}")[0]
        run("buzz callback replayed", "GET", f"{back.path}?{back.query}")
        run("buzz as jack", "GET", "/buzzstream/websites", user="jack")
        run("buzz forbidden", "GET", "/buzzstream/projects/forbidden")

        run("so user", "POST", "/streamone/item/view", b'{"id": "item1"}', json_type)
        run("so hank bad psk", "POST", "/streamone/item/view", b"id=item1", form_type, "hank")
        run("so ivy session", "POST", "/streamone/item/view", b"id=item1", form_type, "ivy")
        standins.admin("streamone", "/__standin/expire_sessions")
        run("so ivy session renewed", "POST", "/streamone/item/view", b"id=item1", form_type, "ivy")
        run("so invalid", "POST", "/streamone/item/view?signature=x", b"", form_type)
        run("so not found", "POST", "/streamone/item/view", b"id=nope", form_type)

        statuses["no caller token"], _, reply = call(gw, "GET", docs)
        bodies.append(reply)
        statuses["wrong caller token"], _, reply = call(
            gw, "GET", docs, None, {"Authorization": "Bearer CALLER-SECRET-4d9e2f1"}
        )
        bodies.append(reply)
        metrics = call(gw, "GET", "/metrics")[1:]
        metrics_text = metrics[1].decode()
        exported.wait_for(40)
    logs = gw.logs()
    spans_text = json.dumps(exported.spans) + b"".join(exported.raw).decode("latin-1")

    expected = {
        "bizz grant": 200, "bizz static user": 200, "bizz expired static user": 502,
        "bizz renewal": 201, "bees login": 200, "bees relogin": 200, "bees erin": 200,
        "bees frank refused": 502, "buzz 2-legged": 201, "buzz gina unknown token": 502,
        "buzz callback": 200, "buzz callback replayed": 400, "buzz as jack": 200,
        "so user": 200, "so hank bad psk": 502, "so ivy session": 200,
        "so ivy session renewed": 200, "so invalid": 400, "no caller token": 401,
        "wrong caller token": 401,
    }  # fmt: skip
    assert {k: statuses[k] for k in expected} == expected, statuses
    assert statuses["bees 404"] >= 400 and statuses["so not found"] >= 400
    assert 'gateway_auth_renewals_total{result="ok",upstream="beeswax"}' in metrics_text or (
        'gateway_auth_renewals_total{upstream="beeswax",result="ok"}' in metrics_text
    )

    minted = runtime_secrets(standins)
    assert len(minted) >= 4, minted  # cookies, granted token, jack's access token...
    client_basic = base64.b64encode(f"standin-client:{SECRETS['BZ_CLIENT_SECRET']}".encode())
    needles = {*SECRETS.values(), *minted, client_basic.decode(), OTLP_KEY}
    needles |= {quote(n, safe="") for n in needles}
    haystacks = {"logs": logs, "metrics": metrics_text, "error bodies": b"\n".join(bodies).decode(),
                 "spans": spans_text}  # fmt: skip
    assert len(bodies) >= 10
    leaks = [(where, n) for where, text in haystacks.items() for n in needles if n in text]
    assert not leaks, f"secrets leaked: {leaks}"
    # The scan is not vacuous: the log holds the run, including the renewals.
    assert sum(1 for line in gw.log_lines() if line.get("event") == "request") >= 20
    servers = [s for s in exported.spans if s["kind"] == "SPAN_KIND_SERVER"]
    assert len(servers) >= 20
    assert any(e["name"] == "gateway.auth.renewal" for s in servers for e in s.get("events", []))
    assert json.loads(bodies[-1])["code"] == "caller_unauthorized"
