"""No error escapes unchecked: every problem body the suite sees is validated.

Registered from ``tests/conftest.py`` (``pytest_plugins``). An autouse fixture
checks, against ``gateway/schemas/problem.json`` (docs/contract.md §3):

- every body read with aiohttp (``ClientResponse.read``, hence ``.text()`` and
  ``.json()``) whose type is ``application/problem+json``: the in-process
  ``gateway_client`` and gateway processes alike;
- every body read with urllib / http.client (``HTTPResponse.read()``, also
  through ``urllib.error.HTTPError``) of that type;
- every problem the in-process gateway renders (``Problem.to_json``), so that
  a test that only looks at the status still has its body checked.

A violation raises :class:`ProblemViolation` where the body is read or made,
and fails the test at teardown even if the test swallowed that exception. A
test that provokes one on purpose asks for ``problem_violations`` and clears it.
"""

from __future__ import annotations

import functools
import http.client
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from gateway.core.problem import PROBLEM_CONTENT_TYPE, Problem

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "gateway" / "schemas" / "problem.json"
_validator: jsonschema.protocols.Validator | None = None


class ProblemViolation(AssertionError):
    """A problem+json body that does not match the shipped schema."""


def validator() -> jsonschema.protocols.Validator:
    global _validator
    if _validator is None:
        schema = json.loads(SCHEMA_PATH.read_text())
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        _validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return _validator


def violations_of(body: bytes | str | dict[str, Any]) -> list[str]:
    """Why ``body`` is not a valid problem (empty list: it is one)."""
    if isinstance(body, dict):
        data: Any = body
    else:
        try:
            data = json.loads(body)
        except ValueError as exc:
            return [f"not JSON: {exc}"]
    found = [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator().iter_errors(data)
    ]
    if isinstance(data, dict) and not str(data.get("type", "")).endswith(f"/{data.get('code')}"):
        found.append("type: the type URI must end with /<code>")
    return found


def _is_problem(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == PROBLEM_CONTENT_TYPE


@pytest.fixture(autouse=True)
def problem_violations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    found: list[str] = []

    def check(where: str, body: bytes | str | dict[str, Any]) -> None:
        errors = violations_of(body)
        if errors:
            text = body if isinstance(body, str | dict) else body[:500].decode("utf-8", "replace")
            message = f"invalid problem body from {where}: {errors}; body: {text!s:.500}"
            found.append(message)
            raise ProblemViolation(message)

    original_read: Callable[..., Any] = aiohttp.ClientResponse.read

    @functools.wraps(original_read)
    async def read(self: aiohttp.ClientResponse) -> bytes:
        body: bytes = await original_read(self)
        if _is_problem(self.headers.get("Content-Type")):
            check(f"{self.method} {self.url}", body)
        return body

    original_http_read: Callable[..., Any] = http.client.HTTPResponse.read

    @functools.wraps(original_http_read)
    def http_read(self: http.client.HTTPResponse, amt: int | None = None) -> bytes:
        body: bytes = original_http_read(self, amt)
        if amt is None and _is_problem(self.getheader("Content-Type")):
            check(f"http.client {self.status}", body)
        return body

    original_to_json: Callable[..., bytes] = Problem.to_json

    @functools.wraps(original_to_json)
    def to_json(self: Problem, *, instance: str, request_id: str, **kwargs: str) -> bytes:
        body = original_to_json(self, instance=instance, request_id=request_id, **kwargs)
        check(f"Problem.to_json ({self.code})", body)
        return body

    monkeypatch.setattr(aiohttp.ClientResponse, "read", read)
    monkeypatch.setattr(http.client.HTTPResponse, "read", http_read)
    monkeypatch.setattr(Problem, "to_json", to_json)
    yield found
    if found:
        pytest.fail(
            "problem+json bodies that break gateway/schemas/problem.json:\n" + "\n".join(found)
        )
