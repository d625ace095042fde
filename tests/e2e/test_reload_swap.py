"""What a reload replaces and what it keeps, in-process against the real stand-ins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from structlog.testing import capture_logs

from gateway.server.app import create_app
from gateway.server.keys import STATE, config_of
from gateway.server.reload import reload_config
from tests.conftest import make_config
from tests.harness import CONFIG, Standins, gateway_env


def write(path: Path, change: Any) -> Path:
    data = yaml.safe_load(CONFIG.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))
    return path


async def test_only_what_changed_is_rebuilt_and_startup_keys_stay(
    aiohttp_client: Any, fresh_standins: Standins, tmp_path: Path
) -> None:
    env = gateway_env(fresh_standins)
    app = create_app(make_config(fresh_standins))
    client = await aiohttp_client(app)
    assert (await client.get("/beeswax/rest/advertiser")).status == 200  # logged in
    state = app[STATE]
    beeswax_auth = state.upstreams["beeswax"].auth
    bizz_client = state.upstreams["bizzstream"].client

    def change(data: dict[str, Any]) -> None:
        data["listen"] = "127.0.0.1:1"  # bound at start-up: kept
        data["server"] = {"max_buffered_bytes": 2**30, "max_inflight": 7}  # the first kept
        data["upstreams"]["bizzstream"]["circuit"] = {"failures": 2}
        data["upstreams"]["bizzstream"]["timeouts"]["head"] = "5s"
        del data["upstreams"]["streamone"]

    with capture_logs() as logs:
        assert await reload_config(app, write(tmp_path / "a.yaml", change), env)
    events = {e["event"]: e for e in logs}
    assert events["config_reloaded"]["upstreams_changed"] == ["bizzstream", "streamone"]
    # (problem_base_url defaults to <public_url>/problems, which follows listen)
    assert events["config_reload_needs_restart"]["keys"] == [
        "listen_port",
        "problem_base_url",
        "server.max_buffered_bytes",
    ]
    assert config_of(app).listen_port != 1
    # The byte budget was sized at start-up: the config in force says what it holds.
    assert config_of(app).server.max_buffered_bytes == state.budget.limit != 2**30
    assert config_of(app).server.max_inflight == 7  # read per call: in force
    assert state.upstreams["beeswax"].auth is beeswax_auth  # unchanged: its login session is kept
    assert state.upstreams["bizzstream"].client is not bizz_client  # new settings...
    assert state.upstreams["bizzstream"].client.session is bizz_client.session  # ...same pool
    assert state.upstreams["bizzstream"].client.cfg.head_timeout == 5.0
    assert state.upstreams["bizzstream"].config.head_timeout == 5.0
    assert "streamone" not in state.upstreams
    assert "bizzstream" in state.breakers
    assert (await client.get("/streamone/item/view")).status == 404  # removed: unknown
    assert (await client.get("/beeswax/rest/advertiser")).status == 200
    logins = [s for s in fresh_standins.seen("beeswax") if s["path"] == "/rest/authenticate"]
    assert len(logins) == 1

    with capture_logs() as logs:
        assert not await reload_config(app, tmp_path / "missing.yaml", env)
    assert logs[0]["event"] == "config_reload_refused"
    assert "missing.yaml" in logs[0]["problems"][0]
    assert "streamone" not in config_of(app).upstreams  # the last good one serves on
