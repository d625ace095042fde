"""Vectors for the shared helpers in gateway/core/errormap.py and the Problem bounds."""

from __future__ import annotations

import pytest

from gateway.core.errormap import (
    code_for_status,
    retry_after_seconds,
    safe_message,
    scrub_secrets,
    validation_items,
)
from gateway.core.messages import UpstreamReply
from gateway.core.problem import MAX_ITEMS, Problem, ValidationError, bounded
from gateway.upstreams.streamone_errors import STATUS_NAMES, code_for, status_name


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "validation_failed"), (401, "upstream_auth_failed"), (403, "forbidden"),
     (404, "not_found"), (405, "method_not_allowed"), (406, "validation_failed"),
     (409, "conflict"), (413, "payload_too_large"), (418, "upstream_error"),
     (429, "rate_limited"), (500, "upstream_error"), (503, "upstream_error"),
     (504, "upstream_error"), (599, "upstream_error")],
)  # fmt: skip
def test_code_for_status(status: int, code: str) -> None:
    assert code_for_status(status) == code


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ("Authorization: Bearer 9f8e7d6c5b4a39281706", "9f8e7d6c5b4a", "Authorization"),
        ("bad token=abc123xyz for user", "abc123xyz", "for user"),
        ('{"password": "hunter2"}', "hunter2", "password"),
        ("Basic dXNlcjpwYXNzd29yZA== refused", "dXNlcjpwYXNzd29yZA", "refused"),
        ("sig 4f1c2e9a8b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e bad", "4f1c2e9a8b7d", "sig"),
        ("oauth_signature=abc%3D&oauth_token=t1", "abc%3D", "oauth_signature"),
    ],
)
def test_scrub_secrets_masks_credentials(text: str, hidden: str, kept: str) -> None:
    out = scrub_secrets(text)
    assert hidden not in out and kept in out and "[redacted]" in out


@pytest.mark.parametrize(
    "text",
    [
        "Bearer token required",
        "Document 123e4567-e89b-12d3-a456-426614174000 was not found",
        "Document 5f8d0d55b54764421b7156c9 was not found",
        "Missing OAuth Authorization header",
        "session expired",
    ],
)
def test_scrub_secrets_keeps_ordinary_text(text: str) -> None:
    assert scrub_secrets(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "<!DOCTYPE html><html><body>x</body></html>",
        'Traceback (most recent call last):\n  File "/a.py", line 1, in <module>',
        "java.lang.IllegalStateException\n\tat com.x.Y.z(Y.java:12)",
        "Error: x\n    at Object.<anonymous> (/srv/app.js:3:9)",
        "PHP Fatal error: x in /var/www/a.php:12\nStack trace:\n#0 /var/www/b.php(3): f()",
        "goroutine 1 [running]:\nmain.main()\n\t/app/main.go:12 +0x1d",
        "NoMethodError: x\n/app/models/a.rb:12:in `b'",
    ],
)
def test_safe_message_refuses_pages_and_stack_traces(text: str) -> None:
    assert safe_message(text) is None


def test_safe_message_flattens_strips_tags_and_bounds() -> None:
    assert safe_message("  a <b>bold</b>\n\tclaim  ") == "a bold claim"
    assert safe_message("at least (see the docs)") == "at least (see the docs)"
    long = safe_message("x " * 1000)
    assert long is not None and len(long) == 300 and long.endswith("…")
    assert safe_message(42) is None and safe_message("   ") is None


def test_retry_after_seconds_and_http_dates() -> None:
    def reply(*headers: tuple[str, str]) -> UpstreamReply:
        return UpstreamReply(status=429, headers=headers)

    assert retry_after_seconds(reply(("Retry-After", "12"))) == 12.0
    assert retry_after_seconds(reply(("Retry-After", "1.5"))) == 1.5
    assert retry_after_seconds(reply(("Retry-After", "-1"))) is None
    assert retry_after_seconds(reply(("Retry-After", "nan"))) is None
    assert retry_after_seconds(reply(("Retry-After", "1e400"))) == 86400.0
    when = ("Retry-After", "Wed, 21 Oct 2026 07:28:30 GMT")
    assert retry_after_seconds(reply(when)) is None  # no Date to measure against
    assert retry_after_seconds(reply(when, ("Date", "Wed, 21 Oct 2026 07:28:00 GMT"))) == 30.0
    assert retry_after_seconds(reply(when, ("Date", "Wed, 21 Oct 2026 08:00:00 GMT"))) == 0.0


def test_validation_items_shapes() -> None:
    assert validation_items([{"field": "a", "message": "m"}]) == (ValidationError("a", "m"),)
    assert validation_items([{"loc": ["body", "a"], "msg": "m"}]) == (
        ValidationError("body.a", "m"),
    )
    assert validation_items([{"source": {"pointer": "/data/a"}, "detail": "m"}]) == (
        ValidationError("data.a", "m"),
    )
    assert validation_items({"a": ["m1", "m2"]}) == (
        ValidationError("a", "m1"),
        ValidationError("a", "m2"),
    )
    assert validation_items(["m"]) == (ValidationError("", "m"),)
    assert validation_items([{"field": "a", "message": "<html>x</html>"}]) == (
        ValidationError("a", "invalid value (message not shown)"),
    )
    assert validation_items(None) == () and validation_items(7) == (ValidationError("", "7"),)
    assert len(validation_items([f"m{i}" for i in range(500)])) == MAX_ITEMS
    deep: object = "m"
    for _ in range(50):
        deep = {"k": deep}
    assert validation_items(deep) == ()  # too deep: ignored, never a RecursionError


def test_problem_body_bounds_every_upstream_text() -> None:
    problem = Problem(
        code="validation_failed",
        detail="d" * 5000,
        upstream_code="c" * 500,
        user_message="u\x00" * 500,
        validation_errors=tuple(ValidationError("f" * 500, "m") for _ in range(200)),
        warnings=tuple("w" for _ in range(200)),
    )
    body = problem.to_dict(instance="/x", request_id="r")
    assert len(body["detail"]) == 300 and len(body["upstream_code"]) == 100
    assert "\x00" not in body["user_message"]
    assert len(body["validation_errors"]) == MAX_ITEMS == len(body["warnings"])
    assert len(body["validation_errors"][0]["field"]) == 100
    assert bounded("a\ud800b") == "a\ufffdb"


def test_streamone_status_names_and_codes() -> None:
    documented = {120: "ITEM_NOT_FOUND", 271: "TOKEN_NOT_FOUND", 281: "SESSION_INVALID",
                  282: "SESSION_NOT_FOUND", 316: "USER_USERNAME_ALREADY_EXISTS"}  # fmt: skip
    assert all(STATUS_NAMES[n] == name for n, name in documented.items())
    assert status_name(999) == "STATUS_999"
    general = {1: "upstream_error", 2: "upstream_auth_failed", 3: "upstream_auth_failed",
               4: "forbidden", 5: "not_found", 6: "validation_failed", 7: "validation_failed",
               8: "rate_limited", 9: "validation_failed", 10: "upstream_unavailable",
               90: "upstream_error"}  # fmt: skip
    assert {n: code_for(n) for n in general} == general
    for number, name in STATUS_NAMES.items():
        if number >= 100 and number != 282:
            code = code_for(number)
            if "NOT_FOUND" in name:
                assert code == "not_found", name
            elif "ALREADY" in name:
                assert code == "conflict", name
            else:
                assert code in ("validation_failed", "conflict", "forbidden"), name
