"""Hot reload under load (issue 15, part 3), with a real gateway process and Redis.

Eight callers keep BizzStream busy while the config file changes its rate
limit (1000/s to 40/s, both delayed, never refused), its bearer token and
its pool size (a new connection pool while calls use the old one), and
the gateway gets SIGHUP: no call fails, and the new limit (``RateLimit-Policy``)
and the new token (seen by the stand-in) are in force within a second. Then an
invalid file is refused with the messages ``check-config`` prints, counted,
and the config in force keeps serving.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.harness import (
    CONFIG,
    ROOT,
    Gateway,
    Standins,
    call,
    gateway_env,
    launch_gateway,
    launch_standins,
)

pytestmark = pytest.mark.e2e
OLD_TOKEN, NEW_TOKEN = "reload-token-OLD-1", "reload-token-NEW-2"
DOCS = "/bizzstream/api/v1/documents?ddName=reload"


@pytest.fixture(scope="module")
def standins() -> Iterator[Standins]:
    s = launch_standins({"bizzstream": {"tokens": [OLD_TOKEN, NEW_TOKEN]},
                         "beeswax": {"login_limit_per_minute": 10_000}})  # fmt: skip
    yield s
    s.stop()


def config(token: str, limit: int, broken: bool = False) -> str:
    data = yaml.safe_load(CONFIG.read_text())
    bizz = data["upstreams"]["bizzstream"]
    bizz["auth"]["token"] = token
    bizz["pool_size"] = 100 if token == OLD_TOKEN else 50  # a new pool: in-flight calls keep theirs
    bizz["rate_limits"] = [{"name": "all", "limit": limit, "period": "1s", "burst": limit,
                            "on_exceed": "delay", "max_delay": "5s"}]  # fmt: skip
    if broken:
        bizz["rate_limits"][0]["limit"] = -1
        bizz["timeouts"]["connect"] = "soon"
    return yaml.safe_dump(data)


def metric(gw: Gateway, line_start: str) -> float:
    for line in call(gw, "GET", "/metrics")[2].decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(line_start)


class Load:
    """Callers in threads, each recording (time, status, RateLimit-Policy)."""

    def __init__(self, gw: Gateway, threads: int = 8) -> None:
        self.gw = gw
        self.results: list[tuple[float, int, str]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop.is_set():
            status, headers, _ = call(self.gw, "GET", DOCS)
            self.results.append((time.monotonic(), status, headers.get("ratelimit-policy", "")))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_reload_under_load_changes_limit_and_token_without_a_failed_call(
    standins: Standins, redis_flushed: str, tmp_path: Path
) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(config(OLD_TOKEN, 1000))
    gw = launch_gateway(gateway_env(standins, redis_flushed), path)
    try:
        with Load(gw) as load:
            time.sleep(1.0)
            path.write_text(config(NEW_TOKEN, 40))
            reloaded_at = time.monotonic()
            reloaded_wall = time.time()
            gw.proc.send_signal(signal.SIGHUP)
            time.sleep(2.0)
        results = load.results
        assert results and {status for _, status, _ in results} == {200}, results[-5:]
        first_new = min(t for t, _, policy in results if "q=40" in policy)
        assert all("q=1000" in p for t, _, p in results if t < reloaded_at)
        assert not [p for t, _, p in results if t > first_new + 0.5 and "q=40" not in p]
        seen = [s for s in standins.seen("bizzstream") if s["path"].endswith("/documents")]
        new_bearer = f"Bearer {NEW_TOKEN}"
        new_token_at = min(
            s["arrived"] for s in seen if s["headers"].get("Authorization") == new_bearer
        )
        late_old = [s for s in seen if s["arrived"] > new_token_at + 0.5
                    and s["headers"].get("Authorization") != new_bearer]  # fmt: skip
        assert late_old == []
        limit_after, token_after = first_new - reloaded_at, new_token_at - reloaded_wall
        assert limit_after < 1.0 and token_after < 1.0, (limit_after, token_after)
        assert metric(gw, 'gateway_config_reloads_total{result="ok"}') == 1
        calls_before = len([r for r in results if r[0] < reloaded_at])

        # An invalid file: refused with check-config's messages, the old config serves on.
        path.write_text(config(NEW_TOKEN, 40, broken=True))
        gw.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while metric(gw, 'gateway_config_reloads_total{result="refused"}') != 1:
            assert time.monotonic() < deadline, "the invalid config was not refused"
            time.sleep(0.05)
        status, headers, _ = call(gw, "GET", DOCS)
        assert status == 200 and "q=40" in headers["ratelimit-policy"]
        assert metric(gw, 'gateway_config_reloads_total{result="ok"}') == 1
    finally:
        gw.stop()
    refused = [line for line in gw.log_lines() if line.get("event") == "config_reload_refused"]
    assert len(refused) == 1
    check = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", "--config", str(path)],
        cwd=ROOT, env=gw.env, capture_output=True, text=True,
    )  # fmt: skip
    assert check.returncode == 2
    printed = [line.strip().removeprefix("- ") for line in check.stderr.splitlines()[1:]]
    assert refused[0]["problems"] == printed and len(printed) == 2, (refused, check.stderr)
    print(
        f"\nreload under load: {len(results)} calls ({calls_before} before), all 200; "
        f"new limit in force {limit_after * 1000:.0f} ms and new token "
        f"{token_after * 1000:.0f} ms after SIGHUP"
    )
