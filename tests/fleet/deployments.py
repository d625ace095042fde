"""Real Redis deployments for the fleet tests: a six-node cluster, a Sentinel group.

Each helper starts ``redis-server`` processes on free loopback ports in a
temporary directory and stops them again; nothing is shared with the suite's
throwaway Redis. Without ``redis-server``/``redis-cli`` the tests skip, saying so.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis as redis_sync

from tests.harness import free_port, wait_port

NEEDED = ("redis-server", "redis-cli")


def require_redis_tools() -> None:
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (make test installs them with apt-get)")


def _server(port: int, workdir: Path, *extra: str) -> subprocess.Popen[bytes]:
    args = [shutil.which("redis-server") or "redis-server", "--port", str(port),
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir),
            *extra]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis_sync.RedisError, OSError):
            if callable(check) and check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def _stop(procs: dict[int, subprocess.Popen[bytes]], workdir: Path) -> None:
    """Terminate every process (all first, then wait) and remove their files."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in procs.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Cluster:
    """Three masters, three replicas, ``cluster-node-timeout`` 1 s (fast failovers)."""

    workdir: Path
    ports: list[int]
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    def client(self, port: int) -> redis_sync.Redis:
        return redis_sync.Redis(host="127.0.0.1", port=port, socket_timeout=2)

    def owner(self, key: str) -> int:
        """The port of the live master that serves ``key``'s slot."""
        for port in self.live():
            info = self.client(port).execute_command("CLUSTER", "SLOTS")
            slot = int(self.client(port).execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, master, *_ in info:
                if start <= slot <= end:
                    return int(master[1])
        raise RuntimeError("no live node answers")

    def live(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def healthy(self) -> bool:
        for port in self.live():
            info = self.client(port).execute_command("CLUSTER", "INFO").decode()
            if "cluster_state:ok" not in info:
                return False
        return True

    def kill(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGKILL)
        self.procs[port].wait(5)

    def stop(self) -> None:
        _stop(self.procs, self.workdir)


@contextlib.contextmanager
def redis_cluster() -> Iterator[Cluster]:
    require_redis_tools()
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="gw-cluster-")), [free_port() for _ in range(6)])
    try:
        for port in cluster.ports:
            cluster.procs[port] = _server(
                port, cluster.workdir, "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "1000",
                # The bus port defaults to port + 10000, which a free port may not allow.
                "--cluster-port", str(free_port()), "--repl-diskless-sync-delay", "0",
            )  # fmt: skip
        for port in cluster.ports:
            wait_port(port)
        subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", "--cluster", "create",
             *(f"127.0.0.1:{p}" for p in cluster.ports), "--cluster-replicas", "1",
             "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=60,
        )  # fmt: skip
        _wait(cluster.healthy, 30, "the cluster to be ok")
        yield cluster
    finally:
        cluster.stop()


@dataclass
class SentinelGroup:
    """One primary, one replica and three sentinels watching them as ``gwprimary``."""

    workdir: Path
    primary: int
    replica: int
    sentinels: list[int]
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    service: str = "gwprimary"

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def current_primary(self) -> int:
        sentinel = redis_sync.Redis(host="127.0.0.1", port=self.sentinels[0], socket_timeout=2)
        _, port = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        return int(port)

    def stop(self) -> None:
        _stop(self.procs, self.workdir)


@contextlib.contextmanager
def sentinel_group() -> Iterator[SentinelGroup]:
    require_redis_tools()
    group = SentinelGroup(
        Path(tempfile.mkdtemp(prefix="gw-sentinel-")),
        free_port(),
        free_port(),
        [free_port() for _ in range(3)],
    )
    try:
        # No 5 s wait before the first full sync (repl-diskless-sync-delay).
        fast = ("--repl-diskless-sync-delay", "0")
        group.procs[group.primary] = _server(group.primary, group.workdir, *fast)
        wait_port(group.primary)
        group.procs[group.replica] = _server(
            group.replica, group.workdir, *fast, "--replicaof", "127.0.0.1", str(group.primary)
        )
        wait_port(group.replica)

        def replicating() -> bool:
            info = redis_sync.Redis(host="127.0.0.1", port=group.replica).info("replication")
            return info.get("master_link_status") == "up"

        _wait(replicating, 30, "the replica to sync")
        for port in group.sentinels:
            conf = group.workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {group.workdir}\n"
                f"sentinel monitor {group.service} 127.0.0.1 {group.primary} 2\n"
                f"sentinel down-after-milliseconds {group.service} 1000\n"
                f"sentinel failover-timeout {group.service} 5000\n"
                f"sentinel parallel-syncs {group.service} 1\n"
            )
            group.procs[port] = subprocess.Popen(
                [shutil.which("redis-server") or "redis-server", str(conf), "--sentinel"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for port in group.sentinels:
            wait_port(port)

        def replica_known() -> bool:
            sentinel = redis_sync.Redis(host="127.0.0.1", port=group.sentinels[0])
            replicas = sentinel.execute_command("SENTINEL", "REPLICAS", group.service)
            return bool(replicas)

        _wait(replica_known, 30, "the sentinels to see the replica")
        yield group
    finally:
        group.stop()
