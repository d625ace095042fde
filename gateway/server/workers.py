"""What worker processes and their supervisor share (``server.workers`` > 1).

The supervisor (``server/supervisor.py``) starts each worker as
``gateway run --worker <index> --ready-fd <fd>`` with ``PROMETHEUS_MULTIPROC_DIR``
set to a fresh directory of its own: the *pod directory*. It holds the
workers' metric files (``server/pod_metrics.py``) and ``workers.json``, the
supervisor's view of its workers, rewritten (atomically) whenever it changes:
``/readyz`` and ``/metrics`` of every process read it.

A worker says it is ready by writing ``ready`` on the pipe ``--ready-fd`` once
its listeners are open, and stops on its own when the supervisor is gone (it
runs in a process group of its own, so a terminal's Ctrl-C reaches only the
supervisor, which drains the workers once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POD_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
STATUS_FILE = "workers.json"
PARENT_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class WorkerRole:
    """This process is worker ``index`` of a supervisor (``gateway run --worker``)."""

    index: int
    ready_fd: int | None
    parent_pid: int
    pod_dir: str

    def announce_ready(self) -> None:
        if self.ready_fd is None:
            return
        with contextlib.suppress(OSError):  # the supervisor may be gone already
            os.write(self.ready_fd, b"ready\n")
        with contextlib.suppress(OSError):
            os.close(self.ready_fd)

    async def watch_parent(self, stop: asyncio.Event) -> None:
        """Set ``stop`` when the supervisor is gone (this worker was re-parented)."""
        while not stop.is_set():
            if os.getppid() != self.parent_pid:
                stop.set()
                return
            await asyncio.sleep(PARENT_POLL_SECONDS)


def write_status(pod_dir: str | Path, status: dict[str, Any]) -> None:
    path = Path(pod_dir) / STATUS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status))
    os.replace(tmp, path)  # readers see the old file or the new one, never half


def read_status(pod_dir: str | Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(pod_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe(status: dict[str, Any] | None) -> tuple[bool, str]:
    """(ready, /readyz's ``workers`` line): ready while at least one worker serves
    and the supervisor is not stopping them."""
    if status is None:
        return False, "unknown (no word from the supervisor)"
    ready, total = int(status.get("ready", 0)), int(status.get("workers", 0))
    line = f"{ready}/{total} ready"
    if status.get("restarts"):
        line += f", {status['restarts']} restarted"
    if status.get("stopping"):
        return False, line + ", stopping"
    return ready > 0, line


def status_reader(pod_dir: str | Path) -> Callable[[], tuple[bool, str]]:
    return lambda: describe(read_status(pod_dir))
