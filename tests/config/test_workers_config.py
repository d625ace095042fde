"""server.workers (GATEWAY_WORKERS): how many worker processes serve the proxy port."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.config_server import parse_workers
from gateway.cpus import auto_workers, cpu_quota
from gateway.errors import ConfigError
from tests.config.test_config import SHIPPED, run_cli, shipped_env


def test_one_worker_by_default() -> None:
    server = load_config(SHIPPED, env=shipped_env()).server
    assert (server.workers, server.workers_auto) == (1, False)


def test_the_variable_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(SHIPPED.read_text().replace("  workers: 1 ", "  workers: 3 ", 1))
    assert load_config(path, env=shipped_env()).server.workers == 3
    assert load_config(path, env={**shipped_env(), "GATEWAY_WORKERS": "2"}).server.workers == 2


def test_auto_is_the_cpu_count_the_container_may_use() -> None:
    server = load_config(SHIPPED, env={**shipped_env(), "GATEWAY_WORKERS": "auto"}).server
    assert server.workers_auto and server.workers == auto_workers() >= 1


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "", "true"])
def test_anything_else_is_refused_naming_the_key(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^server\.workers: expected a whole number"):
        parse_workers(value, "server.workers")


@pytest.mark.parametrize("value", [True, 1.0, 2.5, None])
def test_yaml_values_that_are_not_whole_numbers_are_refused(value: object) -> None:
    with pytest.raises(ConfigError):
        parse_workers(value, "server.workers")


def test_check_config_names_the_variable() -> None:
    result = run_cli("check-config", env={**shipped_env(), "GATEWAY_WORKERS": "many"})
    assert result.returncode == 2
    assert "GATEWAY_WORKERS: expected a whole number of processes >= 1 or auto" in result.stderr


def test_cgroup_files_are_read_v2_then_v1(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("250000 100000\n")
    assert cpu_quota(v2) == 2.5
    v1 = tmp_path / "v1" / "cpu,cpuacct"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(tmp_path / "v1") == 0.5
    assert cpu_quota(tmp_path / "none") is None
    assert auto_workers(tmp_path / "v1") == 1
