"""A real Prometheus server on loopback, for tests (Debian's ``prometheus`` package).

It scrapes the given targets every second, loads the given rule files, keeps
its TSDB in a temporary folder and is stopped (SIGTERM) afterwards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.harness import free_port, wait_port

SCRAPE_SECONDS = 1


@dataclass
class PromServer:
    proc: subprocess.Popen[bytes]
    url: str
    workdir: Path

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query`` at now; errors come back as ``{"error": ...}``, never raised."""
        data = urllib.parse.urlencode({"query": expr}).encode()
        req = urllib.request.Request(f"{self.url}/api/v1/query", data=data, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                body: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400/422: a bad expression
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            return {"error": body.get("error", "unknown error"), "result": []}
        return dict(body["data"])

    def scrapes_of(self, job: str) -> int:
        """How many scrapes of ``job`` are stored so far (the fewest over its targets)."""
        result = self.query(f'count_over_time(up{{job="{job}"}}[5m])')["result"]
        return min((int(float(r["value"][1])) for r in result), default=0)

    def wait_scrapes(self, job: str, more: int, timeout: float = 30) -> None:
        target = self.scrapes_of(job) + more
        deadline = time.monotonic() + timeout
        while self.scrapes_of(job) < target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Prometheus did not scrape {job} {more} more times")
            time.sleep(0.2)

    def logs(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_prometheus(
    binary: str, targets: dict[str, list[str]], rule_files: list[Path]
) -> PromServer:
    """Start Prometheus scraping ``targets`` (job -> host:port list) every second."""
    workdir = Path(tempfile.mkdtemp(prefix="prometheus-"))
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_SECONDS}s",
            "scrape_timeout": f"{SCRAPE_SECONDS}s",
            "evaluation_interval": f"{SCRAPE_SECONDS}s",
        },
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": addrs}]}
            for job, addrs in targets.items()
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (workdir / "prometheus.log").open("wb") as log:  # the child keeps its own fd
        proc = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
        )  # fmt: skip
    server = PromServer(proc, f"http://127.0.0.1:{port}", workdir)
    try:
        wait_port(port, timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(server.url + "/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"Prometheus did not start: {server.logs()[-2000:]}")
            time.sleep(0.1)
    except BaseException:
        server.stop()
        raise
    return server
