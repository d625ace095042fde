"""The toy upstream's OAuth 2 onboarding across a reload of ``public_url``.

Apart from ``test_toy_upstream.py`` (which shows the toy needs nothing from the
server but the app factory): this one drives a reload, as ``SIGHUP`` would, with
the real gateway, the toy's stand-in and a real Redis of that file's fixtures.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import yaml

from gateway.server.keys import config_of
from gateway.server.reload import reload_config
from tests.e2e import test_toy_upstream as toy_e2e
from tests.e2e.test_toy_upstream import CALLER, Setup, get, whoami

# That file's fixtures: the toy registered, the gateway in front of its stand-in.
registered, setup = toy_e2e.registered, toy_e2e.setup


async def test_an_onboarding_started_before_a_public_url_reload_completes(setup: Setup) -> None:
    """The callback URL is the start's, kept in the pending record: OAuth 2's code
    exchange must repeat the approval's redirect_uri (RFC 6749 §4.1.3), and a reload
    of public_url between the start and the callback must not change it (before:
    recomputed at the callback, the stand-in refused the code: 502 upstream_auth_failed)."""
    s = setup
    status, headers, _ = await get(s, "/oauth/toy/start?user=frank", CALLER)
    assert status == 302
    approval = headers["Location"]
    assert parse_qs(urlsplit(approval).query)["redirect_uri"] == [s.gateway + "/oauth/toy/callback"]

    data = yaml.safe_load(s.config.read_text())
    data["public_url"] = "https://gateway.example.test"
    s.config.write_text(yaml.safe_dump(data))
    assert await reload_config(s.app, s.config, {})
    assert config_of(s.app).public_url == "https://gateway.example.test"  # in force
    status, headers, _ = await get(
        s, "/oauth/toy/start?user=grace", CALLER
    )  # new ones: the new URL
    query = parse_qs(urlsplit(headers["Location"]).query)
    assert query["redirect_uri"] == ["https://gateway.example.test/oauth/toy/callback"]

    # The browser approves at the toy and comes back to the old callback URL.
    status, headers, _ = await get(s, approval + "&user=toy-frank")
    assert status == 302
    back = urlsplit(headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == s.gateway + "/oauth/toy/callback"
    status, _, body = await get(s, f"{back.path}?{back.query}")
    assert status == 200, body
    assert json.loads(body) == {"status": "connected", "upstream": "toy", "user": "frank"}
    assert await whoami(s, "frank") == "toy-frank"
