"""The container image (issue 6 §5), without Docker: lint, structure, and a clean-venv run.

Docker cannot run here, so the image's contents are rebuilt the way its build
stage does it: the files its ``COPY`` lines name are copied into a fresh build
context, ``pip`` builds the wheel there (with build isolation, as ``pip install
.`` does in the image) and installs it with its dependencies into a fresh venv.
Then the exact ``ENTRYPOINT`` + ``CMD`` of the runtime stage runs with the
runtime stage's ``ENV`` (plus the stand-ins' credentials), from a directory
outside the repository, and must serve ``/healthz``; the ``HEALTHCHECK`` command
must pass; the ``STOPSIGNAL`` must end it with exit code 0.
"""

from __future__ import annotations

import fnmatch
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.devrun import standin_env
from tests.harness import ROOT, Standins, free_port
from tests.ops import dockerfile
from tests.ops.support import call, run, tool, wait_for

DOCKERFILE = ROOT / "Dockerfile"
SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "PSK", "KEY")


def _stages() -> list[dockerfile.Stage]:
    return dockerfile.parse(DOCKERFILE)


def test_hadolint_passes() -> None:
    result = run([tool("hadolint"), str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_multi_stage_slim_non_root_with_healthcheck_and_sigterm() -> None:
    stages = _stages()
    assert len(stages) >= 2
    runtime = stages[-1]
    base_arg = next(a for a in DOCKERFILE.read_text().splitlines() if a.startswith("ARG PYTHON"))
    assert "slim" in base_arg
    user = runtime.last("USER")
    assert user is not None and user.split(":")[0] not in ("0", "root")
    assert runtime.last("STOPSIGNAL") == "SIGTERM"
    healthcheck = runtime.last("HEALTHCHECK")
    assert healthcheck is not None
    assert dockerfile.exec_form(healthcheck.split(" CMD ", 1)[1]) == ["gateway", "healthcheck"]
    entrypoint = runtime.last("ENTRYPOINT")
    cmd = runtime.last("CMD")
    assert entrypoint is not None and cmd is not None
    assert dockerfile.exec_form(entrypoint) + dockerfile.exec_form(cmd) == ["gateway", "run"]
    # The runtime stage gets the venv from the build stage, not a compiler or pip cache.
    assert any("--from=build" in a for a in runtime.all("COPY"))
    assert not runtime.all("RUN") or all("pip" not in a for a in runtime.all("RUN"))


def test_no_secret_is_baked_into_the_image() -> None:
    for stage in _stages():
        for key in stage.env():
            assert not any(word in key for word in SECRET_WORDS), key
        for sources, _ in dockerfile.copies(stage):
            for source in sources:
                assert not any(w.lower() in source.lower() for w in ("secret", ".env", "key"))
    # The only config copied in is the shipped one, which reads credentials from env.
    shipped = (ROOT / "config" / "gateway.yaml").read_text()
    assert "${BIZZSTREAM_TOKEN}" in shipped and "${STREAMONE_PSK}" in shipped


def _dockerignore_allows(path: str) -> bool:
    allowed = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            allowed = negate
    return allowed


def test_dockerignore_keeps_the_context_to_what_the_image_copies() -> None:
    for sources, _ in dockerfile.copies(_stages()[0]) + dockerfile.copies(_stages()[-1]):
        for source in sources:
            assert _dockerignore_allows(source.rstrip("/")), source
    for private in (".venv", ".git", "tests", "deploy", "config/local.yaml", ".env"):
        assert not _dockerignore_allows(private), private


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build stage, replayed: its COPY sources in a fresh context, pip install ."""
    root = tmp_path_factory.mktemp("image")
    context = root / "src"
    context.mkdir()
    build = _stages()[0]
    for sources, _dest in dockerfile.copies(build):
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(origin, context / source,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
            else:
                shutil.copy2(origin, context / source)
    venv = root / "opt-gateway"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         str(context)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.fail(f"pip install of the build context failed:\n{result.stderr[-3000:]}")
    return venv


@pytest.mark.e2e
def test_the_image_command_starts_the_gateway_from_a_clean_venv(
    image_venv: Path, standins: Standins, tmp_path: Path
) -> None:
    runtime = _stages()[-1]
    bin_dir = image_venv / "bin"
    # ENV of the runtime stage, with the image's paths mapped to this machine.
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    image_env = runtime.env()
    env.update({k: v for k, v in image_env.items() if k != "PATH"})
    config_dest = image_env["GATEWAY_CONFIG"]
    (source,) = [s for srcs, d in dockerfile.copies(runtime) if d == config_dest for s in srcs]
    mounted = tmp_path / "etc-gateway.yaml"
    shutil.copy2(ROOT / source, mounted)
    env["GATEWAY_CONFIG"] = str(mounted)
    env.update(standin_env(standins.urls))  # what a Secret and the pod spec would set
    port, ops_port = free_port(), free_port()
    assert "GATEWAY_LISTEN" not in image_env  # the shipped config's loopback listen applies
    env["GATEWAY_LISTEN"] = f"127.0.0.1:{port}"  # a free port instead of 127.0.0.1:8080
    assert image_env["GATEWAY_OPS_LISTEN"] == "0.0.0.0:9090"
    env["GATEWAY_OPS_LISTEN"] = f"127.0.0.1:{ops_port}"  # a free port on this shared machine
    env["GATEWAY_LOG_FORMAT"] = image_env["GATEWAY_LOG_FORMAT"]

    installed = run([str(bin_dir / "python"), "-c", "import gateway; print(gateway.__file__)"],
                    cwd=tmp_path, env=env)  # fmt: skip
    assert installed.stdout.startswith(str(image_venv)), installed

    command = dockerfile.exec_form(runtime.last("ENTRYPOINT") or "[]")
    command += dockerfile.exec_form(runtime.last("CMD") or "[]")
    command[0] = str(bin_dir / command[0])
    log = (tmp_path / "gateway.log").open("w")
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            try:
                return call(base + "/healthz", timeout=1)[0] == 200
            except OSError:
                return proc.poll() is not None

        assert wait_for(healthy, timeout=30)
        assert proc.poll() is None, (tmp_path / "gateway.log").read_text()
        healthcheck = runtime.last("HEALTHCHECK") or ""
        check_cmd = dockerfile.exec_form(healthcheck.split(" CMD ", 1)[1])
        check_cmd[0] = str(bin_dir / check_cmd[0])
        assert run(check_cmd, env=env, cwd=tmp_path).returncode == 0
        assert call(base + "/bizzstream/api/v1/documents?ddName=orders")[0] == 200
        proc.send_signal(getattr(signal, runtime.last("STOPSIGNAL") or "SIGTERM"))
        assert proc.wait(30) == 0
        failed = run(check_cmd, env=env, cwd=tmp_path)
        assert failed.returncode == 1 and "unhealthy" in failed.stderr
        first = (tmp_path / "gateway.log").read_text().splitlines()[0]
        assert first.startswith("{"), first  # JSON lines, as the image's ENV asks
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()
