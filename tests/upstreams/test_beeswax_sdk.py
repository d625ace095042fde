"""The drop-in mode for Beeswax SDKs: which session calls the gateway answers
itself, which it refuses, and what the answer is (pure, no network)."""

from __future__ import annotations

import json

import pytest

from gateway.core.messages import OutboundRequest
from gateway.errors import InvalidRequest
from gateway.upstreams.beeswax import SPEC, BeeswaxAuthSettings
from gateway.upstreams.beeswax_sdk import session_call

BASE = "http://bees.test"
SETTINGS = BeeswaxAuthSettings(email="ops@example.com", password="pw")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("POST", "/rest/authenticate", "login"),
        ("POST", "/rest/v2/authenticate", "login"),
        ("POST", "/tenant/rest/authenticate", "login"),  # below a base path
        ("POST", "/rest/Authenticate/", "login"),
        ("POST", "/rest/authentic%61te", "login"),
        ("POST", "/rest/authenticate;x=1", "login"),
        ("POST", "/custom/login", "login"),  # the configured login_path
        ("DELETE", "/rest/authenticate", "logout"),  # beeswax_wrapper's authentication.delete()
        ("DELETE", "/rest/v2/authenticate", "logout"),
        ("POST", "/rest/logout", "logout"),
        ("GET", "/rest/v2/logout", "logout"),
        ("DELETE", "/rest/v2/authenticate/logout", "logout"),
        ("PUT", "/rest/authenticate", "refused"),  # changes the account's password
        ("GET", "/rest/authenticate", "refused"),
        ("PATCH", "/rest/logout", "refused"),
        ("POST", "/rest/authenticate/strict", "refused"),
        ("POST", "/custom/login/again", "refused"),
        ("GET", "/rest/advertiser", None),
        ("POST", "/rest/v2/authentications", None),
        ("POST", "/rest/user/strict", None),
    ],
)
def test_session_calls(method: str, path: str, kind: str | None) -> None:
    assert session_call(method, path, "/custom/login") == kind


def test_a_login_or_logout_is_the_success_envelope_without_a_cookie() -> None:
    for method in ("POST", "DELETE"):
        request = OutboundRequest(method, BASE, "/rest/authenticate", body=b'{"email": "x"}')
        answer = SPEC.answer_locally(SETTINGS, request)
        assert answer is not None and answer.status == 200
        assert answer.content_type == "application/json"
        body = json.loads(answer.body)
        assert body["success"] is True and isinstance(body["message"], str)
        assert set(body) == {"success", "message"}


def test_other_session_calls_are_refused_and_api_calls_proxied() -> None:
    with pytest.raises(InvalidRequest, match="manages the Beeswax session") as caught:
        SPEC.answer_locally(SETTINGS, OutboundRequest("PUT", BASE, "/rest/authenticate"))
    # The detail must not deny the drop-in mode: a POST login is answered.
    assert "cannot log in" not in caught.value.detail and "POST login" in caught.value.detail
    assert SPEC.answer_locally(SETTINGS, OutboundRequest("GET", BASE, "/rest/advertiser")) is None
