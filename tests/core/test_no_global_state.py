"""gateway/core holds no process-wide mutable state (issue 11): what a module
defines at import is a constant (a number, a string, a tuple, a frozenset, a
compiled regex, a read-only ``MappingProxyType``, a frozen dataclass), never a
list, dict, set, bytearray or object that code could change at run time, and
no function rebinds a module name with ``global``. State belongs to objects
that ``create_app`` makes (the secret masker: ``core/secrets.py``). One
exception: a bounded memo of a pure function (``functools.lru_cache(maxsize=N)
(f)``, as ``core/oauth1.py`` has), which changes no result."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway.core

CORE = Path(gateway.core.__file__).parent
MUTABLE_DISPLAYS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
# Calls whose result cannot be changed (their arguments may be displays: copied).
FROZEN_CALLS = {"re.compile", "frozenset", "tuple", "MappingProxyType", "types.MappingProxyType"}


def _frozen_dataclasses(tree: ast.Module) -> set[str]:
    """Classes of the module declared ``@dataclass(frozen=True)``."""
    names = set()
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for deco in node.decorator_list:
            frozen = isinstance(deco, ast.Call) and any(
                k.arg == "frozen" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in deco.keywords
            )
            if frozen:
                names.add(node.name)
    return names


def _bounded_memo(value: ast.Call) -> bool:
    """``functools.lru_cache(maxsize=<a number>)(f)``: a pure function's bounded memo."""
    maker = value.func
    return (
        isinstance(maker, ast.Call)
        and ast.unparse(maker.func) in ("functools.lru_cache", "lru_cache")
        and any(
            k.arg == "maxsize" and isinstance(k.value, ast.Constant) and k.value.value is not None
            for k in maker.keywords
        )
    )


def _mutable(value: ast.expr, frozen_classes: set[str]) -> str | None:
    """Why ``value`` builds something mutable, or None."""
    if isinstance(value, MUTABLE_DISPLAYS):
        return f"a {type(value).__name__} display"
    if isinstance(value, ast.Tuple):
        for item in value.elts:
            why = _mutable(item, frozen_classes)
            if why:
                return f"a tuple holding {why}"
        return None
    if isinstance(value, ast.Call):
        name = ast.unparse(value.func)
        if name in FROZEN_CALLS or name in frozen_classes or _bounded_memo(value):
            return None
        return f"a call of {name}()"
    return None  # constants, names, type expressions (``tuple[int, str] | None``)


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    frozen_classes = _frozen_dataclasses(tree)
    found = []
    for node in tree.body:  # what runs at import
        value = None
        if isinstance(node, ast.Assign | ast.AnnAssign):
            value = node.value
        elif isinstance(node, ast.AugAssign):
            found.append(f"{path.name}:{node.lineno}: module-level augmented assignment")
        if value is not None:
            why = _mutable(value, frozen_classes)
            if why:
                found.append(f"{path.name}:{node.lineno}: module-level {why}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            found.append(f"{path.name}:{node.lineno}: global {', '.join(node.names)}")
    return found


def test_core_modules_hold_no_mutable_state() -> None:
    files = sorted(CORE.glob("*.py"))
    assert len(files) >= 10
    found = [v for path in files for v in _violations(path)]
    assert found == [], "\n".join(found)


def test_the_scan_finds_each_kind_of_mutable_state(tmp_path: Path) -> None:
    """The rule itself: each form of shared state is reported, constants are not."""
    source = tmp_path / "sample.py"
    source.write_text(
        "import re\n"
        "from dataclasses import dataclass\n"
        "from types import MappingProxyType\n"
        "@dataclass(frozen=True)\n"
        "class Point:\n"
        "    x: int\n"
        "OK = (1, 'a', frozenset({1}), re.compile('x'), MappingProxyType({1: 2}), Point(1))\n"
        "ALIAS = tuple[int, str] | None\n"
        "A = []\n"
        "B: dict[str, int] = {}\n"
        "C = {1, 2}\n"
        "D = bytearray()\n"
        "E = (1, [])\n"
        "class Registry:\n"
        "    pass\n"
        "F = Registry()\n"
        "G = 0\n"
        "G += 1\n"
        "def bump():\n"
        "    global G\n"
        "import functools\n"
        "MEMO = functools.lru_cache(maxsize=64)(len)\n"
        "UNBOUNDED = functools.lru_cache(maxsize=None)(len)\n"
    )
    lines = sorted((v.split(":")[1] for v in _violations(source)), key=int)
    assert lines == ["9", "10", "11", "12", "13", "16", "18", "20", "23"]
