"""The CPUs this gateway may use, for ``server.workers: auto``.

The container's CPU quota (cgroup v2 ``cpu.max``, else cgroup v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``) bounded by the affinity mask
(``os.sched_getaffinity``), at least 1. Parsing is in ``gateway/core/cpu_quota.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

from gateway.core.cpu_quota import parse_cfs, parse_cpu_max, workers_for

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The quota in CPUs, or None when no cgroup sets one."""
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        return parse_cpu_max(v2)
    for cpu_dir in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        quota = _read(root / cpu_dir / "cpu.cfs_quota_us")
        period = _read(root / cpu_dir / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return parse_cfs(quota, period)
    return None


def affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def auto_workers(root: Path = CGROUP_ROOT) -> int:
    return workers_for(cpu_quota(root), affinity())
