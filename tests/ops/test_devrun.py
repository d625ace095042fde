"""``make run`` (``gateway.devrun``) with real processes: what it prints and how it stops.

Ctrl-C in a terminal reaches the whole process group. From a script the ways
in are SIGTERM to ``make`` (GNU make passes SIGTERM on to its recipe) or a
signal to the devrun process itself, whose SIGINT a script's background job
inherits as ignored: devrun takes it back. Each case must stop the gateway and
the stand-ins, not leave them behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.harness import ROOT, free_port

pytestmark = pytest.mark.e2e


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid``, read from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            for child in (task / "children").read_text().split():
                found.add(int(child))
                todo.append(int(child))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start(args: list[str], port: int, *, ignore_sigint: bool = False) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env["GATEWAY_LISTEN"] = f"127.0.0.1:{port}"

    def as_a_script_job() -> None:  # what bash does to `cmd &` in a script
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=as_a_script_job if ignore_sigint else None,
    )  # fmt: skip


def _wait_ready(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    out = ""
    deadline = time.monotonic() + 60
    while "stops everything" not in out:
        line = proc.stdout.readline()
        assert line and time.monotonic() < deadline, out
        out += line
    return out


def _stops(proc: subprocess.Popen[str], sig: int, port: int, family: set[int]) -> None:
    family |= _children(proc.pid) | {proc.pid}
    assert len(family) >= 3, family  # devrun (or make + devrun), stand-ins, gateway
    os.kill(proc.pid, sig)
    proc.wait(timeout=40)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in family if _alive(p)], "processes left behind"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)


def _kill(proc: subprocess.Popen[str], pids: set[int]) -> None:
    """Whatever a failed test left running (only the processes it started), then
    the pipe it read ``proc``'s output from."""
    for pid in pids | {proc.pid}:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()


def test_devrun_prints_curl_lines_with_headers_and_stops_on_sigint_from_a_script() -> None:
    port = free_port()
    proc = _start([sys.executable, "-m", "gateway.devrun"], port, ignore_sigint=True)
    family: set[int] = set()
    try:
        out = _wait_ready(proc)
        curls = [line.strip() for line in out.splitlines() if line.strip().startswith("curl")]
        assert len(curls) >= 6
        assert all(c.startswith(("curl -i ", "curl -s '")) for c in curls), curls
        assert sum(c.startswith("curl -i ") for c in curls) >= 6
        _stops(proc, signal.SIGINT, port, family)
    finally:
        _kill(proc, family)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_stops_on_sigterm_to_make() -> None:
    port = free_port()
    proc = _start(["make", "--no-print-directory", "run"], port, ignore_sigint=True)
    family: set[int] = set()
    try:
        _wait_ready(proc)
        _stops(proc, signal.SIGTERM, port, family)
    finally:
        _kill(proc, family)
