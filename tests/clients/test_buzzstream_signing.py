"""BuzzStream calls as real clients send them: the signature covers exactly what is
sent, and a caller's own OAuth parameters are refused before anything is sent."""

from __future__ import annotations

import pytest

from tests.clients.conftest import Caller
from tests.conftest import assert_problem
from tests.harness import Gateway, Standins, call


def _invalid_signatures(standins: Standins) -> int:
    return standins.stats("buzzstream").get("signature_invalid", 0)


@pytest.mark.parametrize("path", ["/buzzstream/websites;", "/buzzstream/websites/1;"])
def test_a_path_ending_in_a_semicolon_is_signed_as_sent(
    gateway: Gateway, standins: Standins, path: str
) -> None:
    before = _invalid_signatures(standins)
    status, _, body = call(gateway, "GET", path)  # sent byte for byte (requests drops the ;)
    seen = standins.seen("buzzstream")[-1]
    assert (seen["path"], seen["auth_ok"]) == (path.replace("/buzzstream", "/v1"), True)
    assert _invalid_signatures(standins) == before
    problem = assert_problem(body, 404)  # signed right; the stand-in has no such resource
    assert (status, problem["upstream_status"], problem["code"]) == (404, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "form"),
    [
        ("GET", "/buzzstream/websites?oauth_token=mine", None),
        ("GET", "/buzzstream/websites?max_results=1&oauth%5Fnonce=x", None),  # decoded too
        ("POST", "/buzzstream/websites", {"url": "https://x.example", "oauth_callback": "oob"}),
    ],
)
def test_a_callers_oauth_parameters_are_refused(
    client: Caller, standins: Standins, method: str, path: str, form: dict[str, str] | None
) -> None:
    before = len(standins.seen("buzzstream"))
    reply = client.call(method, path, data=form)
    problem = assert_problem(reply.content, 400)
    assert (reply.status, problem["code"], problem["upstream"]) == (
        400,
        "invalid_request",
        "buzzstream",
    )
    assert "remove the OAuth protocol parameter(s) oauth_" in problem["detail"]
    assert len(standins.seen("buzzstream")) == before  # never sent


def test_ratelimit_headers_only_on_replies_a_policy_covers(client: Caller) -> None:
    """README: BuzzStream's shipped per-user policy applies; BizzStream has none."""
    covered = client.call("GET", "/buzzstream/websites/1")
    assert covered.status == 200
    assert covered.headers["ratelimit-policy"] == '"per_account";q=5;w=1'
    assert covered.headers["ratelimit"].startswith('"per_account";r=')
    uncovered = client.call("GET", "/bizzstream/api/v1/documents?ddName=orders")
    assert uncovered.status == 200
    assert "ratelimit" not in uncovered.headers and "ratelimit-policy" not in uncovered.headers
