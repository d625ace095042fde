"""``make run``: the four stand-ins and the gateway, wired together, on a fresh machine.

Starts ``python -m gateway.standins`` on free ports, sets the contract's
environment variables to them (docs/contract.md §5), starts ``gateway run`` and prints
curl lines to try (with ``-i``, so the RateLimit and X-Request-Id headers
show). Ctrl-C stops everything, and so does SIGTERM (``kill <pid of make>``:
make passes SIGTERM on to its recipe). SIGINT is honoured even when the shell
that started us made it ignored (a script's background job), so ``kill -INT``
on this process works too; make itself, in that case, ignores it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

STANDIN_CREDENTIALS = {
    "BIZZSTREAM_TOKEN": "standin-bizz-token",
    "BIZZSTREAM_ENVIRONMENT_ID": "env-standin",
    "BEESWAX_EMAIL": "ops@example.com",
    "BEESWAX_PASSWORD": "standin-password",
    "BUZZSTREAM_CONSUMER_KEY": "standin-consumer-key",
    "BUZZSTREAM_CONSUMER_SECRET": "standin-consumer-secret",
    "STREAMONE_AUTH_TYPE": "user",
    "STREAMONE_ACTOR_ID": "user",
    "STREAMONE_PSK": "psk",
}


def start_standins(
    extra_args: list[str] | None = None,
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.standins", *(extra_args or [])],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("the stand-ins did not start")
    urls: dict[str, str] = json.loads(line)
    return proc, urls


def standin_env(urls: dict[str, str]) -> dict[str, str]:
    env = dict(STANDIN_CREDENTIALS)
    for name, url in urls.items():
        env[f"{name.upper()}_URL"] = url
    return env


def wait_healthy(
    url: str, timeout: float = 15.0, proc: subprocess.Popen[str] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            # Exited (e.g. the port is taken): never mistake another process for ours.
            raise RuntimeError(f"the gateway exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the gateway did not answer {url}/healthz within {timeout:g}s")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # `make` and process managers stop us with SIGTERM: clean up as for Ctrl-C. A
    # script's background job inherits SIGINT ignored: take it back.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    print("make run: starting the four stand-ins and the gateway...", flush=True)
    standins, urls = start_standins(
        ["--bizzstream-port", "0", "--beeswax-port", "0", "--buzzstream-port", "0",
         "--streamone-port", "0"]
    )  # fmt: skip
    env = {**os.environ, **{k: v for k, v in standin_env(urls).items() if k not in os.environ}}
    if env.get("REDIS_URL"):  # shared upstream sessions need a key: a demo one here
        env.setdefault("GATEWAY_TOKEN_STORE_KEY", "make-run-demo-store-key")
    listen = env.setdefault("GATEWAY_LISTEN", "127.0.0.1:8080")
    gateway = subprocess.Popen([sys.executable, "-m", "gateway", "run"], env=env, text=True)
    base = f"http://{listen}"
    code = 0
    try:
        wait_healthy(base, proc=gateway)
        print(
            f"""
The gateway listens on {base}, in front of local stand-ins of the four upstreams.
Try (-i shows the headers: X-Request-Id, RateLimit-Policy, RateLimit):
  curl -i '{base}/bizzstream/api/v1/documents?ddName=orders'
  curl -i -X POST '{base}/bizzstream/api/v1/documents?ddName=orders' \\
       -H 'Content-Type: application/json' -d '{{"number": 1}}'
  curl -i '{base}/beeswax/rest/advertiser'
  curl -i '{base}/buzzstream/websites?max_results=2'     # RateLimit: "per_account";...
  curl -i -X POST '{base}/streamone/item/view' \\
       -H 'Content-Type: application/json' -d '{{"id": "item1"}}'
  curl -i '{base}/nowhere/x'            # an unknown upstream: a problem+json 404
  curl -i '{base}/problems/unknown_upstream'   # what that problem's type means
  curl -s '{base}/readyz'; curl -s '{base}/metrics' | head
Ctrl-C stops everything (from a script: kill -TERM the make process).
""",
            flush=True,
        )
        code = gateway.wait()
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        code = 1
    finally:
        for proc in (gateway, standins):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (gateway, standins):
            try:
                proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                proc.kill()
    return code


if __name__ == "__main__":
    sys.exit(main())
