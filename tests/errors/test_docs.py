"""docs/errors.md stays true: its example bodies are valid, one per code of the catalogue."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gateway.core.problem import CATALOGUE
from tests.problem_check import violations_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def test_every_example_body_is_valid_and_every_code_has_one() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(), re.DOTALL)
    bodies = [json.loads(block) for block in blocks]
    for body in bodies:
        assert violations_of(body) == [], body
    assert {body["code"] for body in bodies} == set(CATALOGUE)


def test_every_code_is_in_the_catalogue_table() -> None:
    text = DOC.read_text()
    for code in CATALOGUE:
        assert f"| `{code}` |" in text, code
