"""How many CPUs a container may use: the cgroup CPU quota, parsed (no I/O here).

``server.workers: auto`` starts one worker process per CPU the container may
use (``gateway/cpus.py`` reads the files and the affinity mask). A quota of
1.5 CPUs gives 1 worker: a second one would be throttled half the time.
"""

from __future__ import annotations

import math


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 ``cpu.max`` (``"<quota> <period>"``, quota ``max`` = none) in CPUs.

    None when there is no quota or the text is not what the kernel writes.
    """
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    period = parts[1] if len(parts) > 1 else "100000"
    return _ratio(parts[0], period)


def parse_cfs(quota: str, period: str) -> float | None:
    """cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` in CPUs (quota -1 = none)."""
    return _ratio(quota.strip(), period.strip())


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:
        return None
    return q / p


def workers_for(quota: float | None, affinity: int) -> int:
    """Whole CPUs of the quota (rounded down), at most the CPUs this process may
    run on (its affinity mask), at least 1."""
    usable = max(1, affinity)
    if quota is None:
        return usable
    return max(1, min(usable, math.floor(quota + 1e-9)))
