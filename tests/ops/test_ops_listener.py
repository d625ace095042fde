"""The ops listener (GATEWAY_OPS_LISTEN) and ``gateway healthcheck``, with a real process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway import __version__
from gateway.cli import health_target, health_url
from tests.harness import ROOT, Standins, free_port, gateway_env, running_gateway
from tests.ops.support import call


def _healthcheck(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "healthcheck", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "url"),
    [({}, "http://127.0.0.1:8080/healthz"),
     ({"GATEWAY_LISTEN": "0.0.0.0:9000"}, "http://127.0.0.1:9000/healthz"),
     ({"GATEWAY_LISTEN": "0.0.0.0:9000", "GATEWAY_OPS_LISTEN": "0.0.0.0:9090"},
      "http://127.0.0.1:9090/healthz"),
     ({"GATEWAY_LISTEN": "[::]:9000"}, "http://[::1]:9000/healthz")],
)  # fmt: skip
def test_health_url_follows_the_listeners(env: dict[str, str], url: str) -> None:
    assert health_url(env) == url


@pytest.mark.e2e
def test_ops_port_serves_health_and_metrics_but_never_proxies(standins: Standins) -> None:
    ops_port = free_port()
    env = gateway_env(standins, GATEWAY_OPS_LISTEN=f"127.0.0.1:{ops_port}")
    ops = f"http://127.0.0.1:{ops_port}"
    with running_gateway(env) as gw:
        assert call(gw.url + "/bizzstream/api/v1/documents?ddName=orders")[0] == 200
        assert call(ops + "/healthz")[0] == 200
        assert call(ops + "/readyz")[0] == 200
        status, headers, body = call(ops + "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        assert b'gateway_requests_total{code="ok",method="GET",status="200",upstream="bizz' in body
        assert call(ops + "/bizzstream/api/v1/documents?ddName=orders")[0] == 404
        assert call(gw.url + "/healthz")[0] == 200  # still on the main port too
        result = _healthcheck({**env, "GATEWAY_LISTEN": "127.0.0.1:1"})
        assert result.returncode == 0, result.stderr  # it used the ops port
    result = _healthcheck(env)
    assert result.returncode == 1 and "unhealthy" in result.stderr


@pytest.mark.parametrize(
    ("given", "target"),
    [("http://10.0.0.5:9090", "http://10.0.0.5:9090/healthz"),
     ("http://10.0.0.5:9090/", "http://10.0.0.5:9090/healthz"),
     ("http://[::1]:9090", "http://[::1]:9090/healthz"),
     ("http://10.0.0.5:9090/readyz", "http://10.0.0.5:9090/readyz")],
)  # fmt: skip
def test_healthcheck_url_may_be_the_base_url(given: str, target: str) -> None:
    assert health_target(given) == target


@pytest.mark.e2e
def test_healthcheck_with_a_base_url_checks_healthz(standins: Standins) -> None:
    with running_gateway(gateway_env(standins)) as gw:
        result = _healthcheck({}, "--url", gw.url)
        assert result.returncode == 0, result.stderr


def test_version_and_the_variable_named_in_a_bad_ops_listen() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "gateway", "--version"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert (version.returncode, version.stdout) == (0, f"gateway {__version__}\n")
    bad = _healthcheck({"GATEWAY_OPS_LISTEN": "nonsense"})
    assert bad.returncode == 1 and "GATEWAY_OPS_LISTEN: expected host:port" in bad.stderr


def test_healthcheck_fails_on_a_closed_port_and_a_bad_address() -> None:
    closed = _healthcheck({}, "--url", f"http://127.0.0.1:{free_port()}/healthz")
    assert closed.returncode == 1 and "unhealthy" in closed.stderr
    bad = _healthcheck({"GATEWAY_LISTEN": "nonsense"})
    assert bad.returncode == 1 and "unhealthy" in bad.stderr
