"""server.workers: 2 worker processes behind one port, supervised (issue 12).

Real processes: the stand-ins and ``gateway run`` with ``GATEWAY_WORKERS=2`` and
an ops listener (served by the supervisor). The workers' access lines say which
worker served each call (``worker``); ``/metrics`` must count every call once
for the whole pod, on the ops listener and on the proxy port alike.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (
    Gateway,
    Standins,
    call,
    free_port,
    gateway_env,
    launch_gateway,
    run_bench,
)

pytestmark = pytest.mark.e2e
CALLS = 40
PATH = "/bizzstream/__fault/echo"


@pytest.fixture
def pod(standins: Standins) -> Iterator[tuple[Gateway, str]]:
    ops = f"http://127.0.0.1:{free_port()}"
    env = gateway_env(standins, GATEWAY_WORKERS="2", GATEWAY_OPS_LISTEN=ops.removeprefix("http://"))
    gw = launch_gateway(env)
    wait_for(lambda: ready_workers(gw) == {0, 1}, "both workers ready")
    yield gw, ops
    gw.stop()


def wait_for(check: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def ready_workers(gw: Gateway) -> set[int]:
    return {line["worker"] for line in gw.log_lines() if line.get("event") == "worker_ready"}


def worker_pids(gw: Gateway) -> dict[int, int]:
    """The latest pid of each worker index (a restart logs a new one)."""
    pids: dict[int, int] = {}
    for line in gw.log_lines():
        if line.get("event") == "worker_ready":
            pids[line["worker"]] = line["pid"]
    return pids


def served_by(gw: Gateway) -> list[int]:
    return [
        line["worker"]
        for line in gw.log_lines()
        if line.get("event") == "request" and line.get("path") == PATH
    ]


def metric(base: str, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + ("{" if labels else "")):
            continue
        series, _, value = line.rpartition(" ")
        found = series.partition("{")[2].rstrip("}").split(",") if "{" in series else []
        if series.partition("{")[0] == name and all(w in found for w in want.split(",") if w):
            total += float(value)
    return total


def readyz(base: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def send(gw: Gateway, n: int) -> None:
    for _ in range(n):
        status, _, _ = call(gw, "GET", PATH)  # a connection per call: spread by the kernel
        assert status == 200


def test_two_workers_share_the_port_and_metrics_count_every_call_once(
    pod: tuple[Gateway, str],
) -> None:
    gw, ops = pod
    send(gw, CALLS)
    wait_for(lambda: len(served_by(gw)) == CALLS, "every access line")
    served = served_by(gw)
    assert set(served) == {0, 1}, served  # both workers served some
    labels = {"upstream": "bizzstream", "method": "GET", "status": "200", "code": "ok"}
    for base in (ops, gw.url):  # the supervisor's ops listener and any worker
        assert metric(base, "gateway_requests_total", **labels) == CALLS
        count = metric(base, "gateway_request_duration_seconds_count", upstream="bizzstream")
        assert count == CALLS
        assert metric(base, "gateway_workers_ready") == 2
        assert metric(base, "process_cpu_seconds_total") > 0
        assert metric(base, "gateway_build_info") == 1
    status, body = readyz(ops)
    assert status == 200 and body["checks"]["workers"] == "2/2 ready", body
    checks = readyz(gw.url)[1]["checks"]
    assert checks["workers"] == "2/2 ready"
    # no Redis: each worker paces with half of every quota
    assert checks["limiter"] == "memory (limits are per process: 1/2 of each in this one)"


def test_a_killed_worker_is_restarted_and_traffic_flows(pod: tuple[Gateway, str]) -> None:
    gw, ops = pod
    send(gw, 10)
    victim = worker_pids(gw)[1]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: worker_pids(gw)[1] != victim, "worker 1 restarted")
    assert any(
        line.get("event") == "worker_died" and line["pid"] == victim and line["exit_code"] == -9
        for line in gw.log_lines()
    )
    wait_for(lambda: readyz(ops)[0] == 200, "ready again")
    assert readyz(ops)[1]["checks"]["workers"] == "2/2 ready, 1 restarted"
    before = len(served_by(gw))
    send(gw, CALLS)
    wait_for(lambda: len(served_by(gw)) == before + CALLS, "every access line")
    assert set(served_by(gw)[before:]) == {0, 1}  # the new worker 1 serves too
    assert metric(ops, "gateway_worker_restarts_total") == 1
    # the dead worker's calls still count: counters never go back
    ok = {"upstream": "bizzstream", "method": "GET", "status": "200", "code": "ok"}
    assert metric(ops, "gateway_requests_total", **ok) == 10 + CALLS


def test_sigterm_drains_every_worker_and_exits_0(pod: tuple[Gateway, str]) -> None:
    gw, ops = pod
    result: dict[str, Any] = {}

    def slow() -> None:
        result["reply"] = call(gw, "GET", "/bizzstream/__fault/sleep?seconds=1.5")

    caller = threading.Thread(target=slow)
    caller.start()
    wait_for(
        lambda: metric(ops, "gateway_inflight_requests", upstream="bizzstream") == 1, "in flight"
    )
    gw.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: readyz(ops)[0] == 503, "not ready while draining", timeout=5)
    assert gw.proc.wait(20) == 0
    caller.join(10)
    status, _, body = result["reply"]
    assert status == 200 and json.loads(body)["slept"] == 1.5
    stopped = [line for line in gw.log_lines() if line.get("event") == "worker_stopped"]
    assert sorted(line["worker"] for line in stopped) == [0, 1]
    assert all(line["exit_code"] == 0 for line in stopped)


def test_sighup_reaches_every_worker(pod: tuple[Gateway, str]) -> None:
    gw, _ = pod
    gw.proc.send_signal(signal.SIGHUP)

    def reloaded() -> set[int]:
        return {line["worker"] for line in gw.log_lines() if line.get("event") == "config_reloaded"}

    wait_for(lambda: reloaded() == {0, 1}, "both workers reloaded")
    send(gw, 4)  # still serving


def test_workers_leave_when_the_supervisor_is_killed(pod: tuple[Gateway, str]) -> None:
    gw, _ = pod
    pids = worker_pids(gw)
    environ = Path(f"/proc/{pids[0]}/environ").read_bytes().split(b"\0")
    (pod_dir,) = [
        v.split(b"=", 1)[1] for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")
    ]
    gw.proc.kill()  # SIGKILL: no drain forwarded, the workers must notice on their own
    gw.proc.wait(5)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(lambda: all(gone(pid) for pid in pids.values()), "the orphaned workers gone", 10)
    shutil.rmtree(pod_dir.decode(), ignore_errors=True)  # a killed supervisor leaves it


@pytest.mark.skipif(
    not (shutil.which("wrk") and (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"))),
    reason="bench/workers.py needs wrk and nginx",
)
def test_the_workers_bench_runs() -> None:
    out = run_bench("workers.py")
    assert re.search(r"round 1 workers=2: [\d,]+ req/s", out), out
    assert re.search(r"ratio \d+\.\d\dx", out), out
