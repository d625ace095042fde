"""Table-driven: every recorded error reply maps to its expected problem (issue 5)."""

from __future__ import annotations

import pytest

from gateway.upstreams import REGISTRY
from tests.errors.cases import Case, cases_per_upstream, load_cases
from tests.problem_check import violations_of

CASES = load_cases()
NEVER_IN_DETAIL = ("<html", "<!DOCTYPE", "Traceback", 'File "')


@pytest.mark.parametrize("case", CASES, ids=[f"{c.upstream}/{c.name}" for c in CASES])
def test_recorded_case(case: Case) -> None:
    spec = REGISTRY[case.upstream]
    reply = case.reply
    problem = spec.parse_error(reply)
    expect = case.expect
    if expect is None:
        assert problem is None, problem
        if "success_headers" in case.data:
            expected = tuple(tuple(h) for h in case.data["success_headers"])
            assert spec.success_headers(reply) == expected
        return
    assert problem is not None
    body = problem.to_dict(instance=f"/{case.upstream}/x", request_id="rid")
    assert violations_of(body) == []
    assert body["upstream"] == case.upstream
    expect.setdefault("upstream_status", reply.status)
    for key, value in expect.items():
        assert body.get(key) == value, (key, body)
    for text in case.data.get("detail_contains", []):
        assert text in body["detail"], body["detail"]
    for text in [*NEVER_IN_DETAIL, *case.data.get("detail_excludes", [])]:
        assert text not in body["detail"], body["detail"]
    for key in case.data.get("absent", []):
        assert key not in body, body
    assert problem.loud is bool(case.data.get("loud", False))
    problem.to_json(instance="/x", request_id="rid")  # encodes


def test_every_upstream_has_its_cases() -> None:
    counts = cases_per_upstream()
    assert set(counts) == set(REGISTRY)
    assert all(n >= 15 for n in counts.values()), counts


def test_every_error_of_the_proxy_path_is_mapped_never_none() -> None:
    """The proxy answers a bare upstream_error when parse_error says None for a 4xx/5xx."""
    for case in CASES:
        if case.reply.status >= 400:
            assert REGISTRY[case.upstream].parse_error(case.reply) is not None, case.name
