"""Typed reading of a YAML mapping, with errors that name the full key path.

``Section`` wraps one mapping and remembers where it sits in the file, so every
error reads like ``upstreams.beeswax.timeouts.connect: expected a number``.
Unknown keys are errors too: a typo must not be silently ignored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from gateway.errors import ConfigError

T = TypeVar("T")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class Secret:
    """A secret value whose ``repr`` and ``str`` are masked."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def interpolate(value: Any, env: Mapping[str, str], path: str) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a YAML tree.

    A ``${VAR}`` without a default whose variable is unset is an error naming
    both the variable and the key: never a silent fallback.
    """
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{path}: environment variable {name} is not set")

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def environ() -> Mapping[str, str]:
    return os.environ


class Section:
    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'config'}: expected a mapping")
        self.data: dict[str, Any] = data
        self.path = path
        self._used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return name in self.data and self.data[name] is not None

    def raw(self, name: str, default: Any = None) -> Any:
        self._used.add(name)
        return self.data.get(name, default)

    def _required(self, name: str) -> Any:
        value = self.raw(name)
        if value is None or value == "":
            raise ConfigError(f"{self.key(name)}: required")
        return value

    def text(self, name: str, default: str | None = None) -> str:
        value = self.raw(name) if self.has(name) else default
        if value is None:
            raise ConfigError(f"{self.key(name)}: required")
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: expected a string")
        return str(value)

    def optional_str(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None or value == "":
            return None
        return self.text(name)

    def choice(self, name: str, options: tuple[str, ...], default: str | None = None) -> str:
        value = self.text(name, default)
        if value not in options:
            raise ConfigError(f"{self.key(name)}: must be one of {', '.join(options)}")
        return value

    def secret(self, name: str) -> Secret:
        value = self._required(name)
        if not isinstance(value, str | int):
            raise ConfigError(f"{self.key(name)}: expected a string")
        return Secret(str(value))

    def optional_secret(self, name: str) -> Secret | None:
        self._used.add(name)
        return self.secret(name) if self.has(name) and self.data[name] != "" else None

    def integer(self, name: str, default: int | None = None, *, minimum: int = 0) -> int:
        value = self.raw(name, default)
        if value is None:
            raise ConfigError(f"{self.key(name)}: required")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{self.key(name)}: expected an integer") from None
        if isinstance(value, bool) or (isinstance(value, float) and value != number):
            raise ConfigError(f"{self.key(name)}: expected an integer")
        if number < minimum:
            raise ConfigError(f"{self.key(name)}: must be >= {minimum}")
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{self.key(name)}: expected true or false")

    def duration(self, name: str, default: float | None = None) -> float:
        """Seconds, from a number or a string like ``250ms``, ``2s``, ``1m``."""
        value = self.raw(name, default)
        if value is None:
            raise ConfigError(f"{self.key(name)}: required")
        if isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: expected a duration such as 2s or 250ms")
        if isinstance(value, int | float):
            seconds = float(value)
        else:
            match = _DURATION.match(str(value))
            if not match:
                raise ConfigError(f"{self.key(name)}: expected a duration such as 2s or 250ms")
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
        if seconds < 0:
            raise ConfigError(f"{self.key(name)}: must not be negative")
        return seconds

    def section(self, name: str) -> Section:
        self._used.add(name)
        return Section(self.data.get(name), self.key(name))

    def each(self, name: str, parse: Callable[[Section], T]) -> dict[str, T]:
        """A mapping of sub-sections (e.g. ``users``), each parsed and checked for
        unknown keys."""
        out: dict[str, T] = {}
        for key, sub in self.section(name).items():
            out[key] = parse(sub)
            sub.done()
        return out

    def items(self) -> Iterator[tuple[str, Section]]:
        for name in self.data:
            yield name, self.section(name)

    def seq(self, name: str) -> list[Any]:
        value = self.raw(name, [])
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(f"{self.key(name)}: expected a list")
        return value

    def done(self) -> None:
        """Refuse unknown keys: a typo must not silently fall back to a default."""
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            raise ConfigError(f"{self.key(unknown[0])}: unknown key")
