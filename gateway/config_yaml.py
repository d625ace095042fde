"""YAML text to plain data, refusing duplicate keys, with errors that name the line.

PyYAML's ``safe_load`` keeps the last of two equal keys silently, so a second
``redis:`` block would replace the first without a word; here it is refused,
naming both lines. A syntax error names the line where the broken construct
starts (PyYAML's "context", e.g. the ``[`` never closed) and keeps the parser's
own explanation, with the line where it noticed the problem.
"""

from __future__ import annotations

from typing import Any

import yaml

from gateway.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """``SafeLoader`` whose mappings refuse a key given twice."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden
            continue
        key = loader.construct_object(key_node, deep=True)
        mark = key_node.start_mark
        try:
            first = seen.setdefault(key, mark)
        except TypeError:  # an unhashable key: let PyYAML say what it says about it
            continue
        if first is not mark:  # both on one line in a flow mapping `{a: 1, a: 2}` too
            where = f"line {first.line + 1}"
            if first.line == mark.line:
                where = f"column {first.column + 1} of that line"
            raise ConfigError(
                f"line {mark.line + 1}: duplicate key {key!r} (first given at {where})"
            )
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def describe(exc: yaml.YAMLError) -> str:
    """``line N: <what the parser says>``; N is where the broken construct starts."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return str(exc)
    problem = exc.problem or "syntax error"
    if exc.context and exc.context_mark is not None:
        return (
            f"line {exc.context_mark.line + 1}: {exc.context} ({_where(exc.context_mark)}): "
            f"{problem} ({_where(exc.problem_mark)})"
        )
    return f"line {exc.problem_mark.line + 1}: {problem} ({_where(exc.problem_mark)})"


def parse_yaml(text: str, file: str) -> Any:
    """The data in ``text``; a ``ConfigError`` naming ``file`` and the line otherwise."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"config file {file}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {file}: invalid YAML at {describe(exc)}") from None
