"""deploy/kubernetes: schema-valid at a current Kubernetes, and consistent (issues 6 and 14).

``kubernetes-validate`` (strict: unknown fields are errors) checks every
resource of the kustomization at the newest Kubernetes the installed package
knows. The rest checks what a schema cannot: the sidecar is native, its probes
hit the gateway's ops port, the Secret holds every key the pod reads, the
mounted config loads with the real loader under the pod's environment, the
onboarding listener alone is exposed to browsers (only the callback and the
problem pages routed), and Redis keeps the onboarded tokens on disk (AOF).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.config import load_config
from gateway.config_callers import is_loopback
from tests.harness import ROOT
from tests.ops import dockerfile
from tests.ops.support import DEPLOY, load_yaml_docs

K8S = DEPLOY / "kubernetes"
CONTRACT_ENV = {
    "BIZZSTREAM_URL", "BIZZSTREAM_TOKEN", "BIZZSTREAM_ENVIRONMENT_ID",
    "BEESWAX_URL", "BEESWAX_EMAIL", "BEESWAX_PASSWORD",
    "BUZZSTREAM_URL", "BUZZSTREAM_CONSUMER_KEY", "BUZZSTREAM_CONSUMER_SECRET",
    "STREAMONE_URL", "STREAMONE_AUTH_TYPE", "STREAMONE_ACTOR_ID", "STREAMONE_PSK", "REDIS_URL",
    "GATEWAY_PUBLIC_URL", "GATEWAY_TOKEN_STORE_KEY",
}  # fmt: skip
SECRET_ENV = CONTRACT_ENV - {
    "BIZZSTREAM_URL",
    "BEESWAX_URL",
    "BUZZSTREAM_URL",
    "STREAMONE_URL",
    "STREAMONE_AUTH_TYPE",
    "GATEWAY_PUBLIC_URL",
}


def _resources() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs.extend(load_yaml_docs(K8S / name))
    return docs


def _find(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in _resources() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _app() -> dict[str, Any]:
    return _find("Deployment", "example-app")


def _gateway(pod: dict[str, Any]) -> dict[str, Any]:
    (sidecar,) = [c for c in pod["initContainers"] if c["name"] == "gateway"]
    return sidecar


def _port(name: str) -> dict[str, Any]:
    (port,) = [
        p for p in _gateway(_app()["spec"]["template"]["spec"])["ports"] if p["name"] == name
    ]
    return port


def test_every_resource_is_valid_at_the_newest_kubernetes_version() -> None:
    version = kubernetes_validate.latest_version()
    assert tuple(int(p) for p in version.split(".")[:2]) >= (1, 34)
    resources = _resources()
    assert {d["kind"] for d in resources} >= {"Deployment", "Service", "Secret", "ConfigMap"}
    for doc in resources:
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_would_catch_a_typo() -> None:
    broken = _app()
    _gateway(broken["spec"]["template"]["spec"])["restartPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_the_gateway_is_a_native_sidecar_with_probes_on_its_ops_port() -> None:
    pod = _app()["spec"]["template"]["spec"]
    gateway = _gateway(pod)
    assert gateway["restartPolicy"] == "Always"
    port = _port("gateway-ops")
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert gateway["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert gateway["resources"]["requests"] and gateway["resources"]["limits"]
    security = gateway["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the image's USER


def test_every_credential_comes_from_the_secret_and_the_secret_has_every_key() -> None:
    gateway = _gateway(_app()["spec"]["template"]["spec"])
    env = {e["name"]: e for e in gateway["env"]}
    assert set(env) >= CONTRACT_ENV
    secret = _find("Secret", "gateway-upstream-credentials")
    for name in SECRET_ENV:
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"], name
    for name in CONTRACT_ENV - SECRET_ENV:
        assert "value" in env[name], name


def _pod_env() -> dict[str, str]:
    gateway = _gateway(_app()["spec"]["template"]["spec"])
    secret = _find("Secret", "gateway-upstream-credentials")["stringData"]
    out = {}
    for item in gateway["env"]:
        if "value" in item:
            out[item["name"]] = item["value"]
        else:
            out[item["name"]] = secret[item["valueFrom"]["secretKeyRef"]["key"]]
    return out


def _config_mount(pod: dict[str, Any]) -> dict[str, Any]:
    configmaps = {v["name"] for v in pod["volumes"] if "configMap" in v}
    (mount,) = [m for m in _gateway(pod)["volumeMounts"] if m["name"] in configmaps]
    return mount


def test_the_sidecar_can_run_workers_on_its_read_only_root() -> None:
    """GATEWAY_WORKERS=auto follows limits.cpu; with workers > 1 the supervisor makes
    the pod's metric directory (PROMETHEUS_MULTIPROC_DIR) with tempfile under TMPDIR
    or /tmp, which a read-only root filesystem only allows on a writable volume."""
    pod = _app()["spec"]["template"]["spec"]
    gateway = _gateway(pod)
    env = _pod_env()
    assert env["GATEWAY_WORKERS"] == "auto"
    # The shipped 1-CPU limit gives one worker: a sidecar serves one app.
    assert gateway["resources"]["limits"]["cpu"] == "1"
    assert gateway["securityContext"]["readOnlyRootFilesystem"] is True
    tmp = env.get("TMPDIR", "/tmp")
    mounts = {m["mountPath"]: m for m in gateway["volumeMounts"]}
    assert tmp in mounts, f"no writable volume at {tmp}: workers > 1 cannot start"
    mount = mounts[tmp]
    assert not mount.get("readOnly")
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume, volume
    assert {m["name"] for m in gateway["volumeMounts"]} == {
        _config_mount(pod)["name"],
        mount["name"],
    }


def test_the_mounted_config_loads_under_the_pods_environment(tmp_path: Path) -> None:
    pod = _app()["spec"]["template"]["spec"]
    configmap = _find("ConfigMap", "gateway-config")
    mount = _config_mount(pod)
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == "gateway-config" and mount["readOnly"]
    env = _pod_env()
    assert env["GATEWAY_CONFIG"] == f"{mount['mountPath']}/gateway.yaml"
    path = tmp_path / "gateway.yaml"
    path.write_text(configmap["data"]["gateway.yaml"])
    config = load_config(path, env)  # the real loader: every ${VAR} must be set
    assert config.listen_host == "127.0.0.1"  # the proxy stays inside the pod
    assert config.ops_listen == ("0.0.0.0", _port("gateway-ops")["containerPort"])
    assert config.onboarding_listen == ("0.0.0.0", _port("gateway-onboard")["containerPort"])
    host = _find("Ingress", "gateway-onboarding")["spec"]["rules"][0]["host"]
    assert config.public_url == f"https://{host}"  # BuzzStream sends browsers there
    assert config.token_store_key is not None  # onboarded tokens survive restarts
    assert config.redis.replicas == _app()["spec"]["replicas"]
    assert set(config.upstreams) == {"bizzstream", "beeswax", "buzzstream", "streamone"}
    # Kubernetes waits longer than the gateway drains.
    assert pod["terminationGracePeriodSeconds"] > config.shutdown_grace


def test_scraping_reaches_the_ops_port() -> None:
    pod_template = _app()["spec"]["template"]
    labels = pod_template["metadata"]["labels"]
    port = _port("gateway-ops")
    service = _find("Service", "example-app-gateway-metrics")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    annotations = pod_template["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    (monitor,) = load_yaml_docs(K8S / "podmonitor.yaml")
    assert monitor["kind"] == "PodMonitor"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"


def test_redis_is_there_for_the_shared_quotas() -> None:
    redis = _find("Service", "gateway-redis")
    url = _find("Secret", "gateway-upstream-credentials")["stringData"]["REDIS_URL"]
    assert url.startswith(
        f"redis://{redis['metadata']['name']}:{redis['spec']['ports'][0]['port']}"
    )
    redis_set = _find("StatefulSet", "gateway-redis")
    pod = redis_set["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"  # onboarded tokens are kept on disk
    (claim,) = redis_set["spec"]["volumeClaimTemplates"]
    (mount,) = container["volumeMounts"]
    assert mount["name"] == claim["metadata"]["name"]
    assert args[args.index("--dir") + 1] == mount["mountPath"]
    assert args[args.index("--maxmemory-policy") + 1].startswith("volatile-")  # tokens stay


def test_only_the_onboarding_listener_is_exposed_to_browsers() -> None:
    labels = _app()["spec"]["template"]["metadata"]["labels"]
    service = _find("Service", "gateway-onboarding")
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == _port("gateway-onboard")["name"]
    ingress = _find("Ingress", "gateway-onboarding")
    (rule,) = ingress["spec"]["rules"]
    routed = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert routed == {("/oauth/buzzstream/callback", "Exact"), ("/problems", "Prefix")}
    for path in rule["http"]["paths"]:
        backend = path["backend"]["service"]
        assert (backend["name"], backend["port"]["name"]) == ("gateway-onboarding", port["name"])
    assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]


def test_image_env_pod_env_and_configmap_together_keep_the_proxy_on_loopback(
    tmp_path: Path,
) -> None:
    """The config exactly as the running container sees it (issue 10 item 1): the
    image's ENV, overridden by the pod's env, with the ConfigMap mounted where
    GATEWAY_CONFIG points. The image used to set GATEWAY_LISTEN=0.0.0.0:8080, which
    beat the ConfigMap's loopback `listen`: a check of the ConfigMap alone missed it."""
    runtime = dockerfile.parse(ROOT / "Dockerfile")[-1]
    image_env = {k: v for k, v in runtime.env().items() if k != "PATH"}
    env = {**image_env, **_pod_env()}
    pod = _app()["spec"]["template"]["spec"]
    gateway = _gateway(pod)
    mount = _config_mount(pod)
    assert env["GATEWAY_CONFIG"] == f"{mount['mountPath']}/gateway.yaml"
    path = tmp_path / "gateway.yaml"
    path.write_text(_find("ConfigMap", "gateway-config")["data"]["gateway.yaml"])
    config = load_config(path, env)  # the real loader, its exposure check included
    assert is_loopback(config.listen_host), config.listen_host
    ops_port = {p["name"]: p["containerPort"] for p in gateway["ports"]}["gateway-ops"]
    assert config.ops_listen == ("0.0.0.0", ops_port)
    assert config.listen_port not in [p["containerPort"] for p in gateway["ports"]]
    # The image alone, with its shipped config, is on loopback too; it exposes only ops.
    shipped = load_config(ROOT / "config" / "gateway.yaml", {**image_env, **_pod_env()})
    assert is_loopback(shipped.listen_host)
    assert shipped.ops_listen == ("0.0.0.0", ops_port)
    assert runtime.all("EXPOSE") == [str(ops_port)]


def test_the_network_policy_admits_only_the_sidecars_declared_non_proxy_ports() -> None:
    policy = _find("NetworkPolicy", "example-app-ingress")
    labels = _app()["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    admitted = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    pod = _app()["spec"]["template"]["spec"]
    declared = {p["name"] for c in pod["initContainers"] + pod["containers"]
                for p in c.get("ports", [])}  # fmt: skip
    # Every port a container declares is admitted (a new listener must be added here),
    # and nothing else: the proxy's port is not among them.
    assert admitted == declared == {"gateway-ops", "gateway-onboard"}
    assert all(rule["ports"] for rule in policy["spec"]["ingress"])  # none admits every port
