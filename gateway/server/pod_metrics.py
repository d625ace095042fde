"""``/metrics`` for a whole pod of worker processes (``server.workers`` > 1).

Every worker runs with ``PROMETHEUS_MULTIPROC_DIR`` set to the pod directory
(``server/workers.py``), so prometheus-client keeps each metric value in a
memory-mapped file per process. :func:`pod_registry` is what any process of
the pod (a worker on the proxy listener, the supervisor on the ops listener)
exposes: ``MultiProcessCollector`` sums counters and histograms (buckets,
``_sum`` and ``_count``) over all workers, dead ones included, so a restart
never makes a counter go back; gauges combine as their ``multiprocess_mode``
says (in-flight calls: the sum over live workers; fallback and circuit flags:
the maximum).

The client library's ``process_*`` collector reads one process; here they
are the pod's: CPU seconds of the supervisor and every live worker plus those
of the workers that have exited (so it never goes back), memory and open file
descriptors summed over the live processes. Also exported:
``gateway_workers`` (configured), ``gateway_workers_ready`` and
``gateway_worker_restarts_total``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Info, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from gateway import __version__
from gateway.server.workers import read_status

SUMMED = (
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
)
FROM_SUPERVISOR = ("process_max_fds", "process_start_time_seconds")


def _samples(pid: int) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in ProcessCollector(pid=lambda: pid, registry=None).collect():
        for sample in family.samples:
            found[sample.name] = sample.value
    return found


class PodCollector:
    """The supervisor's view (``workers.json``) and the pod's ``process_*``."""

    def __init__(self, pod_dir: str | Path) -> None:
        self._dir = pod_dir

    def collect(self) -> Iterator[Metric]:
        status = read_status(self._dir)
        if status is None:
            return
        yield GaugeMetricFamily(
            "gateway_workers", "Worker processes configured (server.workers).", status["workers"]
        )
        yield GaugeMetricFamily(
            "gateway_workers_ready", "Worker processes serving the proxy port.", status["ready"]
        )
        yield CounterMetricFamily(
            "gateway_worker_restarts",
            "Worker processes the supervisor restarted after they died.",
            status["restarts"],
        )
        yield from self._process(status["supervisor"], status["pids"], status["reaped_cpu"])

    def _process(self, supervisor: int, pids: Iterable[int], reaped: float) -> Iterator[Metric]:
        totals: dict[str, float] = defaultdict(float)
        for pid in (supervisor, *pids):
            for name, value in _samples(pid).items():
                totals[name] += value
        parent = _samples(supervisor)
        yield CounterMetricFamily(
            "process_cpu_seconds",
            "CPU seconds of the supervisor and its workers, exited ones included.",
            totals["process_cpu_seconds_total"] + reaped,
        )
        for name in SUMMED:
            yield GaugeMetricFamily(name, f"{name}, summed over the pod's processes.", totals[name])
        for name in FROM_SUPERVISOR:
            if name in parent:
                yield GaugeMetricFamily(name, f"{name} of the supervisor.", parent[name])


def pod_registry(pod_dir: str | Path) -> CollectorRegistry:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(pod_dir))  # type: ignore[no-untyped-call]
    registry.register(PodCollector(pod_dir))
    PlatformCollector(registry=registry)
    Info("gateway_build", "Gateway version.", registry=registry).info({"version": __version__})
    return registry
