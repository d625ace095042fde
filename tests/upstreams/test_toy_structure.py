"""The toy fifth upstream (``toy.py``) is one module plus one registry line, structurally.

``tests/e2e/test_toy_upstream.py`` onboards it through the real gateway; this
checks what that proves: the module reads nothing of the server, no code under
``gateway/`` names it, and the test adds it by the registry and the config alone.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.upstreams import REGISTRY
from tests.upstreams import toy

ROOT = Path(__file__).resolve().parents[2]
TOY = Path(toy.__file__)
E2E = ROOT / "tests" / "e2e" / "test_toy_upstream.py"
PURE = ("gateway.core", "gateway.upstreams", "gateway.config_reader", "gateway.errors")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_toy_module_imports_only_the_pure_layers() -> None:
    gateway = {m for m in _imports(TOY) if m.split(".")[0] == "gateway"}
    assert gateway, "the toy is built from the gateway's pure layers"
    assert {m for m in gateway if not m.startswith(PURE)} == set()
    assert not {m for m in _imports(TOY) if m.split(".")[0] in ("aiohttp", "redis")}


def test_no_gateway_code_names_the_toy() -> None:
    named = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "gateway").rglob("*.py")
        if re.search(r"\btoy\b", path.read_text(), re.IGNORECASE)
    ]
    assert named == []


def test_the_e2e_test_adds_the_toy_by_the_registry_and_the_config_alone() -> None:
    tree = ast.parse(E2E.read_text())
    patches = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "monkeypatch"
    ]
    assert patches, "the toy is registered by a fixture"
    for call in patches:
        assert isinstance(call.func, ast.Attribute) and call.func.attr == "setitem"
        assert isinstance(call.args[0], ast.Name) and call.args[0].id == "REGISTRY"
    # From the server, only the app factory every deployment runs.
    server = {m for m in _imports(E2E) if m.startswith("gateway.server")}
    assert server == {"gateway.server.app"}


def test_a_registered_upstream_may_not_take_a_reserved_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(REGISTRY, "oauth", dataclasses.replace(toy.SPEC, name="oauth"))
    auth = {"client_id": "c", "client_secret": "s", "token": "t"}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(
        {"upstreams": {"oauth": {"base_url": "http://127.0.0.1:9", "auth": auth}}}
    ))  # fmt: skip
    with pytest.raises(ConfigError, match=r"upstreams\.oauth: /oauth is one of the gateway's own"):
        load_config(path, {})
