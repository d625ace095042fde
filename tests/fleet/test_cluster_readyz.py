"""/readyz on a Redis Cluster reports the cluster's state, not one node's PING.

One real ``redis-server`` in cluster mode holding every slot: the smallest
cluster. Dropping one slot makes ``cluster_state:fail`` while every node still
answers PING (as when a master and its replica are both gone).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync

from gateway.config_reader import Secret
from gateway.server.app import create_app
from tests.conftest import make_config
from tests.fleet.deployments import _server, _wait, require_redis_tools
from tests.harness import Standins, free_port, wait_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def one_node_cluster() -> Iterator[int]:
    require_redis_tools()
    workdir = Path(tempfile.mkdtemp(prefix="gw-cluster1-"))
    port = free_port()
    proc = _server(port, workdir, "--cluster-enabled", "yes", "--cluster-port", str(free_port()))
    try:
        wait_port(port)
        node = redis_sync.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        node.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        _wait(lambda: node.cluster("INFO")["cluster_state"] == "ok", 10, "cluster_state ok")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


async def test_readyz_reports_a_failed_cluster_state(
    aiohttp_client: Any, fresh_standins: Standins, one_node_cluster: int
) -> None:
    config = make_config(fresh_standins)
    redis = replace(
        config.redis,
        url=Secret(f"redis+cluster://127.0.0.1:{one_node_cluster}"),
        mode="cluster",
        shared_sessions=False,
    )
    client = await aiohttp_client(create_app(replace(config, redis=redis)))
    resp = await client.get("/readyz")
    assert resp.status == 200
    checks = (await resp.json())["checks"]
    assert checks["redis_mode"] == "cluster" and checks["redis"] == "ok"

    node = redis_sync.Redis(host="127.0.0.1", port=one_node_cluster, socket_timeout=2)
    node.execute_command("CLUSTER", "DELSLOTS", 0)  # slot 0 has no master now
    assert node.ping()
    resp = await client.get("/readyz")
    checks = (await resp.json())["checks"]
    # Still ready (calls go on; the limiter falls back for keys on the lost slots),
    # but the operator sees it: without the check, "ok".
    assert resp.status == 200
    assert checks["redis"] == "degraded (cluster_state fail)"
