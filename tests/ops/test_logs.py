"""Logs: ``redact_secrets``, level and format from config or environment, the pipeline."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from gateway.core.secrets import SecretMasker
from gateway.logs import (
    ACCESS_EVENT,
    REDACTED,
    LineLogger,
    SecretRedactor,
    configure_logging,
    log_access,
    log_settings,
    redact_secrets,
)
from tests.harness import CONFIG, ROOT, Standins, gateway_env


def redact(**event: Any) -> dict[str, Any]:
    return dict(redact_secrets(None, "info", dict(event)))


@pytest.fixture
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("aiohttp.access").disabled = False
    structlog.reset_defaults()


# --- redact_secrets -------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["authorization", "Authorization", "cookie", "set_cookie", "password",
            "consumer_secret", "token", "access_token", "psk", "oauth_signature",
            "api_key", "api-key", "session_key"],
)  # fmt: skip
def test_values_under_secret_keys_are_redacted(key: str) -> None:
    assert redact(**{key: "s3cr3t-value"})[key] == REDACTED


def test_other_keys_and_non_string_flags_pass_unchanged() -> None:
    event = redact(event="request", upstream="beeswax", status=200, token_expired=True, path="/x")
    assert event == {
        "event": "request", "upstream": "beeswax", "status": 200, "token_expired": True,
        "path": "/x",
    }  # fmt: skip


def test_nested_mappings_and_lists_are_redacted() -> None:
    event = redact(headers={"Authorization": "Bearer abc.def", "Accept": "json"},
                   items=[{"password": "pw"}, "Bearer xyz123"])  # fmt: skip
    assert event["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    assert event["items"] == [{"password": REDACTED}, f"Bearer={REDACTED}"]


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("upstream said: Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi"),
        ("Basic dXNlcjpwYXNz failed", "dXNlcjpwYXNz"),
        ('OAuth oauth_consumer_key="k", oauth_signature="c2lnbmF0dXJl"', "c2lnbmF0dXJl"),
        ("GET /api/item/view?api=3&signature=0a1b2c3d4e&user=u", "0a1b2c3d4e"),
        ("login with password=hunter2&email=a@b.c", "hunter2"),
        ("token=abcdef123456 expired", "abcdef123456"),
    ],
)
def test_secret_looking_substrings_are_masked_inside_any_string(text: str, leak: str) -> None:
    out = redact(detail=text)["detail"]
    assert leak not in out
    assert REDACTED in out


def test_the_request_line_scans_its_free_fields_only() -> None:
    # The canonical line (ACCESS_EVENT): what a caller or an upstream chose (path,
    # user, request id, method as sent, a detail, any other field) is masked as on
    # any line; the gateway's own fields (bounded sets, numbers) are not scanned.
    masker = SecretMasker()
    masker.remember_configured(["psk-1234-abcd"])
    out = SecretRedactor(masker)(None, "info", {
        "event": ACCESS_EVENT, "path": "/x/psk-1234-abcd", "user": "token=u-secret",
        "request_id": "Bearer rid-secret", "method": "psk-1234-abcd", "detail": "psk-1234-abcd",
        "later_bound": "password=pw-secret", "password": "pw2-secret", "status": 200,
        "code": "token=trusted", "upstream": "bizzstream", "duration_ms": 1.5, "retries": 0,
    })  # fmt: skip
    free = ("path", "user", "request_id", "method", "detail", "later_bound", "password")
    assert out["path"] == f"/x/{REDACTED}" and out["method"] == REDACTED
    for leak in ("psk-1234-abcd", "u-secret", "rid-secret", "pw-secret", "pw2-secret"):
        assert not any(leak in str(out[k]) for k in free), leak
    assert out["code"] == "token=trusted"  # the gateway's own: never a caller's text
    assert (out["status"], out["upstream"], out["duration_ms"]) == (200, "bizzstream", 1.5)
    assert out["event"] == "request"
    # Any other line named "request" gets the full redaction.
    assert redact(event="request", code="token=abc")["code"] == f"token={REDACTED}"


@pytest.mark.parametrize(
    ("field", "value", "leak"),
    [
        ("path", "/x/psk-1234-abcd", "psk-1234-abcd"),  # the masker, in one field only
        ("user", "token=u-secret", "u-secret"),  # a pattern, in one field only
        ("request_id", "Bearer rid-secret", "rid-secret"),
        ("method", "psk-1234-abcd", "psk-1234-abcd"),
        ("password", "pw-secret", "pw-secret"),  # a secret-named key
        ("later_bound", {"token": "nested-secret"}, "nested-secret"),  # not a string
    ],
)
def test_one_secret_among_clean_free_fields_is_still_redacted(
    field: str, value: Any, leak: str
) -> None:
    # The request line scans its free fields joined, in one pass, when all are clean.
    masker = SecretMasker()
    masker.remember_configured(["psk-1234-abcd"])
    line = {"event": ACCESS_EVENT, "path": "/x/y", "user": "alice", "request_id": "rid-1",
            "method": "GET", "status": 200, field: value}  # fmt: skip
    out = SecretRedactor(masker)(None, "info", line)
    assert leak not in json.dumps(out)
    clean = SecretRedactor(masker)(None, "info", {"event": ACCESS_EVENT, "path": "/x/y"})
    assert clean["path"] == "/x/y"


def test_registered_config_secrets_are_masked_wherever_they_appear() -> None:
    masker = SecretMasker()
    masker.remember_configured(["psk-1234-abcd", "abc"])  # too short values are not registered
    redactor = SecretRedactor(masker)
    event = {"event": "upstream replied", "detail": "echo: psk-1234-abcd!", "note": "abc"}
    out = redactor(None, "info", event)
    assert out["detail"] == f"echo: {REDACTED}!"
    assert out["note"] == "abc"


# --- level and format -----------------------------------------------------------


def test_environment_overrides_the_config_file() -> None:
    assert log_settings("info", "auto", {}) == ("info", "auto")
    env = {"GATEWAY_LOG_LEVEL": "DEBUG", "GATEWAY_LOG_FORMAT": "console"}
    assert log_settings("info", "json", env) == ("debug", "console")
    assert log_settings("warning", "json", {"GATEWAY_LOG_LEVEL": ""}) == ("warning", "json")


@pytest.mark.parametrize(
    ("env", "name"),
    [({"GATEWAY_LOG_LEVEL": "verbose"}, "GATEWAY_LOG_LEVEL"),
     ({"GATEWAY_LOG_FORMAT": "xml"}, "GATEWAY_LOG_FORMAT")],
)  # fmt: skip
def test_a_bad_environment_value_is_an_error_naming_the_variable(
    env: dict[str, str], name: str
) -> None:
    with pytest.raises(ValueError, match=name):
        log_settings("info", "auto", env)


def test_check_config_refuses_a_bad_log_level_from_the_environment(standins: Standins) -> None:
    env = gateway_env(standins, GATEWAY_LOG_LEVEL="loud")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "check-config", "--config", str(CONFIG)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "log.level" in result.stderr or "GATEWAY_LOG_LEVEL" in result.stderr


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_the_level_filters_and_json_lines_go_to_stdout(
    clean_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("warning", "json")
    log = structlog.get_logger("gateway.test")
    log.info("quiet")
    log.warning("loud", password="pw", detail="Bearer abc.def")
    (line,) = _lines(capsys.readouterr().out)
    assert line["event"] == "loud" and line["level"] == "warning"
    assert line["password"] == REDACTED and "abc.def" not in line["detail"]
    assert line["timestamp"].endswith("Z")


def test_standard_library_records_become_redacted_json_lines(
    clean_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json")
    logging.getLogger("aiohttp.server").error("Error handling request: token=abc123456")
    logging.getLogger("aiohttp.server").debug("below the level")
    (line,) = _lines(capsys.readouterr().out)
    assert line["logger"] == "aiohttp.server" and line["level"] == "error"
    assert "abc123456" not in line["event"]


def test_console_format_is_human_readable(
    clean_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "console")
    structlog.get_logger("gateway.test").info("started", listen="127.0.0.1:8080")
    out = capsys.readouterr().out
    assert "started" in out and "listen" in out
    with pytest.raises(ValueError):
        json.loads(out)


# --- the canonical line ---------------------------------------------------------

CANONICAL = {"request_id", "upstream", "method", "path", "status", "code", "duration_ms",
             "ratelimit_delay_ms"}  # fmt: skip


async def test_one_canonical_line_per_request_with_the_contract_fields(
    gateway_client: Any,
) -> None:
    with capture_logs() as captured:
        resp = await gateway_client.get(
            "/bizzstream/api/v1/documents?ddName=orders&token=query-secret",
            headers={"X-Request-Id": "canon-1"},
        )
        assert resp.status == 200
        resp = await gateway_client.get("/nowhere/x", headers={"X-Request-Id": "canon-2"})
        assert resp.status == 404
    lines = [e for e in captured if e["event"] == "request"]
    assert [e["request_id"] for e in lines] == ["canon-1", "canon-2"]
    ok, unknown = lines
    assert set(ok) >= CANONICAL
    assert ok["path"] == "/bizzstream/api/v1/documents"  # never the query
    assert (ok["upstream"], ok["status"], ok["code"]) == ("bizzstream", 200, "ok")
    assert (unknown["upstream"], unknown["status"], unknown["code"]) == (
        None, 404, "unknown_upstream"
    )  # fmt: skip
    assert "query-secret" not in json.dumps(lines)


# --- the request line's own writer (logs.AccessWriter, issue 12) -----------------------

ACCESS_FIELDS = dict(
    request_id="rid-1", upstream="bizzstream", method="GET",
    path="/bizzstream/x/Bearer abc.def/s3cr3t-value", status=200, code="ok",
    duration_ms=1.5, upstream_ms=1.0, ratelimit_delay_ms=0.0, upstream_status=200,
    retries=0, user="alice",
)  # fmt: skip


def test_the_request_line_written_on_its_own_equals_structlogs_line(
    clean_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    masker = SecretMasker()
    masker.remember_configured(["s3cr3t-value"])
    configure_logging("info", "json", masker)
    # a bound field is a free field: redacted in both (the writer used to redact
    # before merging the bound context)
    structlog.contextvars.bind_contextvars(worker=1, note="token=bound-secret")
    try:
        log_access(**ACCESS_FIELDS)  # the writer
        structlog.get_logger("gateway.access").info(ACCESS_EVENT, **ACCESS_FIELDS)  # the chain
    finally:
        structlog.contextvars.unbind_contextvars("worker", "note")
    fast, chain = _lines(capsys.readouterr().out)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", fast["timestamp"])
    assert abs(_epoch(fast["timestamp"]) - _epoch(chain["timestamp"])) < 1.0
    del fast["timestamp"], chain["timestamp"]
    assert fast == chain
    assert fast["worker"] == 1 and fast["event"] == "request" and fast["level"] == "info"
    assert "abc.def" not in fast["path"] and "s3cr3t-value" not in fast["path"]
    assert "bound-secret" not in json.dumps(fast)


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def test_the_request_line_goes_through_structlog_when_its_chain_is_changed(
    clean_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", "json")
    with capture_logs() as captured:  # changes the chain in place
        log_access(**ACCESS_FIELDS)
    assert [e["event"] for e in captured] == ["request"]
    structlog.configure(processors=[structlog.processors.JSONRenderer()])  # another chain
    log_access(**ACCESS_FIELDS)
    (line,) = _lines(capsys.readouterr().out)
    assert "timestamp" not in line  # the new chain's line, not the writer's
    configure_logging("warning", "json")
    log_access(**ACCESS_FIELDS)  # below the level: no line
    assert capsys.readouterr().out == ""


class _Writes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, s: str) -> int:
        self.calls.append(s)
        return super().write(s)


def test_a_long_line_and_its_newline_are_one_write(
    clean_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # print() wrote the message and its newline apart: with several worker processes
    # on one stdout, another process's line could land between them.
    out = _Writes()
    monkeypatch.setattr(sys, "stdout", out)
    configure_logging("info", "json")  # its loggers write to the stdout of the moment
    assert isinstance(structlog.get_config()["logger_factory"](), LineLogger)
    structlog.get_logger("gateway.test").error("boom", detail="x" * 20_000)
    (call,) = out.calls
    assert call.endswith("\n") and json.loads(call)["detail"] == "x" * 20_000
