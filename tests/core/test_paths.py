"""Path safety (docs/contract.md §1): hostile paths never leave the base path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core import paths
from gateway.core.paths import UnsafePath, join_base, safe_subpath

HOSTILE = [
    "..",
    "../etc/passwd",
    "api/../../admin",
    "api/%2e%2e/admin",
    "api/%2E%2E/admin",
    "api/.%2e/admin",
    "%2e%2e",
    "api/./x",
    "/evil.example.com/x",  # would make //evil.example.com
    "api//x",
    "user@evil.example.com/x",
    "api%40evil.example.com",
    "api\\..\\admin",
    "api%5c..%5cadmin",
    "http://evil.example.com/x",
    "https:evil.example.com",
    "api%2fadmin",
    "api%2Fadmin",
    "api%00",
    "api/%zz",
    "api/sp ace",
    "api/\x01",
    "api/..;/admin",
    "api/.%2e;x/admin",
    "api/%252e%252e/admin",
    "api%252fadmin",
    "api/%c0%ae%c0%ae/admin",
    "api/%0a",
    "api/%7F",
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_paths_are_refused(raw: str) -> None:
    with pytest.raises(UnsafePath):
        safe_subpath(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "/"),
        ("api/v1/documents", "/api/v1/documents"),
        ("api/v1/documents/", "/api/v1/documents/"),
        ("rest/advertiser/strict", "/rest/advertiser/strict"),
        ("files/name%20with%20space.txt", "/files/name%20with%20space.txt"),
        ("a/b.c/..d/e..", "/a/b.c/..d/e.."),
        ("users/42:active", "/users/42:active"),
    ],
)
def test_ordinary_paths_are_kept(raw: str, expected: str) -> None:
    assert safe_subpath(raw) == expected


def test_join_base_keeps_one_slash() -> None:
    assert join_base("/v1", "/websites") == "/v1/websites"
    assert join_base("/v1/", "/websites") == "/v1/websites"
    assert join_base("", "/api/item/view") == "/api/item/view"


# --- the plain-path shortcut (issue 12) ---------------------------------------------

_PIECES = ["a", "Z", "0", "-", "_", "~", ".", "..", "/", "//", "%2e", "%2F", "%", "%25",
           "@", "\\\\", ";", ":", "http:", "%00", "%c0", "é", " ", "?"]  # fmt: skip


def _outcome(fn: Any, raw: str) -> str:
    try:
        return fn(raw)
    except UnsafePath:
        return "refused"


@settings(max_examples=2000)
@given(st.lists(st.sampled_from(_PIECES), max_size=8).map("".join))
def test_the_plain_path_shortcut_agrees_with_every_check(raw: str) -> None:
    assert _outcome(safe_subpath, raw) == _outcome(paths._checked_subpath, raw)


@pytest.mark.parametrize("raw", ["api/v1/documents", "a/b/", "x.json", "a-b_c~d/e..f"])
def test_plain_paths_take_the_shortcut(raw: str) -> None:
    assert paths._PLAIN.match(raw) and safe_subpath(raw) == "/" + raw
