"""The supervisor of ``server.workers`` > 1 worker processes (docs/operations.md, "Workers").

``gateway run`` with more than one worker does not serve calls itself. It
starts each worker as ``gateway run --worker <i>`` (a fresh interpreter, the
same config file and environment), and every worker opens the proxy listener
(and the onboarding one) with ``SO_REUSEPORT``: the kernel spreads new
connections over them. The supervisor:

- restarts a worker that dies, after a pause that doubles from
  :data:`BACKOFF_FIRST` to :data:`BACKOFF_MAX` while it keeps dying (back to the
  first once a worker lived :data:`STABLE_SECONDS`); each death is logged
  (``worker_died``) and counted (``gateway_worker_restarts_total``). A worker
  that fails before it ever served stops the whole gateway (exit 1): a port in
  use or a broken install does not heal by retrying;
- on SIGTERM or SIGINT sends each worker SIGTERM once (each drains as one
  gateway process does: ``/readyz`` 503, calls in flight finish within
  ``shutdown_grace``) and exits when they all have, 0 when they all exited 0.
  A second signal is passed on too: it ends the workers' grace period;
- passes SIGHUP on to every worker (each reloads the config itself);
- serves the ops listener (``ops_listen``) when one is set: ``/healthz`` (the
  supervisor runs), ``/readyz`` (a worker's answer through the proxy
  listener, with the ``workers`` check; 503 while no worker is ready or
  during a shutdown) and ``/metrics`` for the whole pod (``pod_metrics.py``).

The pod directory (``PROMETHEUS_MULTIPROC_DIR`` of the workers) is a fresh
temporary directory per start, removed at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import mark_process_dead

from gateway.config import GatewayConfig
from gateway.logs import get_logger
from gateway.server.listener import BoundedSite, runner_options
from gateway.server.pod_metrics import pod_registry
from gateway.server.workers import POD_DIR_ENV, describe, write_status

log = get_logger("gateway.supervisor")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
STABLE_SECONDS = 30.0
READYZ_TIMEOUT = 1.0


@dataclass
class Slot:
    index: int
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False
    served: bool = False  # became ready at least once


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _loopback(host: str) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


class Supervisor:
    def __init__(self, config: GatewayConfig, config_path: str | None, pod_dir: str) -> None:
        self.config = config
        self.config_path = config_path
        self.pod_dir = pod_dir
        self.slots = [Slot(i) for i in range(config.server.workers)]
        self.restarts = 0
        self.stopping = False
        self.failed = False
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._env = {
            **os.environ,
            POD_DIR_ENV: pod_dir,
            "GATEWAY_WORKERS": str(config.server.workers),  # `auto` resolved once, here
        }

    # -- the view every process reads (workers.json) -------------------------------

    def publish(self) -> None:
        write_status(
            self.pod_dir,
            {
                "workers": len(self.slots),
                "ready": sum(s.ready for s in self.slots),
                "pids": [s.proc.pid for s in self.slots if s.proc is not None],
                "supervisor": os.getpid(),
                "restarts": self.restarts,
                "reaped_cpu": _children_cpu(),
                "stopping": self.stopping,
            },
        )

    # -- workers ---------------------------------------------------------------------

    def _command(self, index: int, fd: int) -> list[str]:
        config = ["--config", self.config_path] if self.config_path else []
        return [sys.executable, "-m", "gateway", "run", *config,
                "--worker", str(index), "--ready-fd", str(fd)]  # fmt: skip

    async def _spawn(self, slot: Slot) -> asyncio.subprocess.Process:
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._command(slot.index, write_fd),
                stdin=asyncio.subprocess.DEVNULL,
                env=self._env,
                pass_fds=(write_fd,),
                process_group=0,  # a terminal's Ctrl-C reaches the supervisor alone
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        slot.proc = proc
        self.publish()
        if self.stopping:  # a signal came while it started
            self._signal(proc, signal.SIGTERM)
        task = asyncio.get_running_loop().create_task(self._await_ready(slot, proc, read_fd))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return proc

    async def _await_ready(self, slot: Slot, proc: asyncio.subprocess.Process, fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        try:
            line = await reader.readline()
        finally:
            transport.close()
        if line.strip() == b"ready" and slot.proc is proc:
            slot.ready = slot.served = True
            log.info("worker_ready", worker=slot.index, pid=proc.pid)
            self.publish()

    async def _run_slot(self, slot: Slot) -> int:
        loop = asyncio.get_running_loop()
        delay = BACKOFF_FIRST
        while True:
            started = loop.time()
            proc = await self._spawn(slot)
            code = await proc.wait()
            slot.proc, slot.ready = None, False
            # its live gauges go; counters stay
            mark_process_dead(proc.pid, self.pod_dir)  # type: ignore[no-untyped-call]
            self.publish()
            if self.stopping:
                log.info("worker_stopped", worker=slot.index, pid=proc.pid, exit_code=code)
                return code
            if not slot.served:
                log.error("worker_failed_to_start", worker=slot.index, exit_code=code)
                self.failed = True
                self.stop()
                return code or 1
            if loop.time() - started >= STABLE_SECONDS:
                delay = BACKOFF_FIRST
            log.error(
                "worker_died", worker=slot.index, pid=proc.pid, exit_code=code, restart_in=delay
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            if self.stopping:
                return 0
            delay = min(delay * 2, BACKOFF_MAX)
            self.restarts += 1

    # -- signals ---------------------------------------------------------------------

    @staticmethod
    def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)

    def forward(self, sig: int) -> None:
        for slot in self.slots:
            if slot.proc is not None:
                self._signal(slot.proc, sig)

    def stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self._stop.set()
            self.publish()
            log.info("draining_workers", workers=sum(s.proc is not None for s in self.slots))
        self.forward(signal.SIGTERM)  # a second signal ends the workers' grace period

    def reload(self) -> None:
        log.info("reload_forwarded", workers=sum(s.proc is not None for s in self.slots))
        self.forward(signal.SIGHUP)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        self.publish()
        runner = await self._start_ops()
        if self.config.token_store_key is None:
            log.warning(
                "token_store_key_per_worker",
                detail="token_store_key is unset: each worker encrypts stored user tokens "
                "with a key of its own, so a token one worker stored is unreadable by the "
                "others; set token_store_key with server.workers > 1",
            )
        log.info(
            "supervisor_started",
            workers=len(self.slots),
            auto=self.config.server.workers_auto,
            listen=f"{self.config.listen_host}:{self.config.listen_port}",
        )
        try:
            codes = await asyncio.gather(*(self._run_slot(slot) for slot in self.slots))
        finally:
            if runner is not None:
                await runner.cleanup()
        log.info("stopped", exit_codes=codes)
        return 1 if self.failed or any(codes) else 0

    # -- the ops listener --------------------------------------------------------------

    async def _start_ops(self) -> web.AppRunner | None:
        if self.config.ops_listen is None:
            return None
        app = web.Application()
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        server = self.config.server
        runner = web.AppRunner(app, handle_signals=False, access_log=None, **runner_options(server))
        await runner.setup()
        site = BoundedSite(  # the same bounds as a single process's ops listener
            runner,
            *self.config.ops_listen,
            max_connections=server.max_connections,
            on_refused=lambda: None,  # answered 503 and closed; the probes retry
            on_malformed=lambda status, code: None,  # logged once by the handler
            problem_base=self.config.problem_base_url,
        )
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        return runner

    async def _readyz(self, request: web.Request) -> web.Response:
        """A worker's ``/readyz`` (Redis, limiter, workers), or 503 when none answers."""
        ready, line = describe(_status(self))
        if ready:
            url = f"http://{_loopback(self.config.listen_host)}:{self.config.listen_port}/readyz"
            timeout = aiohttp.ClientTimeout(total=READYZ_TIMEOUT)
            try:
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.get(url) as reply,
                ):
                    return web.json_response(await reply.json(), status=reply.status)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                line += f", no worker answered ({type(exc).__name__})"
        checks = {"workers": line}
        if self.stopping:
            checks["shutdown"] = "in progress"
        return web.json_response({"status": "not ready", "checks": checks}, status=503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(pod_registry(self.pod_dir))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _status(sup: Supervisor) -> dict[str, object]:
    return {
        "workers": len(sup.slots),
        "ready": sum(s.ready for s in sup.slots),
        "restarts": sup.restarts,
        "stopping": sup.stopping,
    }


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def supervise(config: GatewayConfig, config_path: str | None) -> int:
    """Run ``server.workers`` workers until SIGTERM/SIGINT; the exit code."""
    pod_dir = tempfile.mkdtemp(prefix="gateway-pod-")
    try:
        return await Supervisor(config, config_path, pod_dir).run()
    finally:
        shutil.rmtree(pod_dir, ignore_errors=True)
