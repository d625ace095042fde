"""deploy/compose/docker-compose.yml, checked for structure (Docker cannot run here)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from gateway.config import load_config
from gateway.config_reader import _VAR
from gateway.devrun import STANDIN_CREDENTIALS
from gateway.standins.__main__ import STANDINS
from tests.harness import CONFIG
from tests.ops import dockerfile
from tests.ops.support import DEPLOY, ROOT

COMPOSE_DIR = DEPLOY / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def required_variables(node: Any) -> set[str]:
    """``${VAR}`` references without a default in the string values of a YAML tree."""
    if isinstance(node, str):
        return {m.group(1) for m in _VAR.finditer(node) if m.group(2) is None}
    if isinstance(node, dict):
        node = list(node.values())
    if isinstance(node, list):
        return set().union(*(required_variables(v) for v in node)) if node else set()
    return set()


def test_the_five_services_are_there_with_an_image_or_a_build() -> None:
    services = _compose()["services"]
    assert set(services) == {"gateway", "standins", "redis", "prometheus", "grafana"}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        build = service.get("build")
        if build is not None:
            context = (COMPOSE_DIR / build["context"]).resolve()
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        for dep in service.get("depends_on", {}):
            assert dep in services, (name, dep)
        for image in [service.get("image", "")]:
            assert image.count(":") == 1 and not image.endswith(":latest"), image


def test_ports_are_published_on_loopback_only() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert re.fullmatch(r"127\.0\.0\.1:\d+:\d+", port), (name, port)


def test_every_volume_mounts_a_file_or_folder_of_the_repo() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            host, container, *mode = volume.split(":")
            assert (COMPOSE_DIR / host).exists(), (name, host)
            assert container.startswith("/") and mode == ["ro"], volume


def test_the_gateway_gets_every_variable_the_shipped_config_needs() -> None:
    env = _compose()["services"]["gateway"]["environment"]
    needed = required_variables(yaml.safe_load(CONFIG.read_text()))
    assert needed <= set(env), needed - set(env)
    assert env["REDIS_URL"].startswith("redis://redis:")
    for key, value in STANDIN_CREDENTIALS.items():
        assert env[key] == value, key
    # Each upstream URL points at the stand-ins service on that stand-in's port.
    for upstream, (_, port, suffix) in STANDINS.items():
        assert env[f"{upstream.upper()}_URL"] == f"http://standins:{port}{suffix}"
    host, port = env["GATEWAY_LISTEN"].rsplit(":", 1)
    assert host == "0.0.0.0"
    # Beyond loopback without caller tokens: only with the explicit opt-in (the demo
    # publishes the port on the host's loopback alone).
    assert env["GATEWAY_ALLOW_UNAUTHENTICATED_CALLERS"] == "true"
    image_env = {k: v for k, v in dockerfile.parse(ROOT / "Dockerfile")[-1].env().items()
                 if k != "PATH"}  # fmt: skip
    config = load_config(CONFIG, {**image_env, **{k: str(v) for k, v in env.items()}})
    assert (config.listen_host, str(config.listen_port)) == ("0.0.0.0", port)
    published = _compose()["services"]["gateway"]["ports"][0]
    assert published.endswith(f":{port}")


def test_prometheus_scrapes_the_gateway_service_and_loads_the_rules() -> None:
    compose = _compose()
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = prom["scrape_configs"]
    (static,) = job["static_configs"]
    port = compose["services"]["gateway"]["environment"]["GATEWAY_LISTEN"].rsplit(":", 1)[1]
    assert static["targets"] == [f"gateway:{port}"]
    assert "gateway" in job["job_name"]  # GatewayTargetDown matches job=~".*gateway.*"
    mounts = compose["services"]["prometheus"]["volumes"]
    assert any(m.startswith("../prometheus/rules:/etc/prometheus/rules") for m in mounts)
    assert prom["rule_files"] == ["rules/*.yml"]
    # Grafana's timeInterval is the scrape interval, so $__rate_interval holds 4 scrapes.
    ds = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    assert ds["datasources"][0]["jsonData"]["timeInterval"] == prom["global"]["scrape_interval"]
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"


def test_the_gateway_has_time_to_drain_before_docker_kills_it() -> None:
    grace = yaml.safe_load(CONFIG.read_text())["shutdown_grace"]
    stop = _compose()["services"]["gateway"]["stop_grace_period"]
    assert int(stop.rstrip("s")) > int(str(grace).rstrip("s"))


def test_readme_or_docs_say_how_to_start_it() -> None:
    docs = (ROOT / "docs" / "operations.md").read_text()
    assert "docker compose -f deploy/compose/docker-compose.yml up --build" in docs
