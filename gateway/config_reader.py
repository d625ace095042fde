"""Typed reading of a YAML mapping, with errors that name the full key path.

``Section`` wraps one mapping and remembers where it sits in the file, so every
error reads like ``upstreams.beeswax.timeouts.connect: expected a number``.
Unknown keys are errors too: a typo must not be silently ignored.

A ``Section`` given a :class:`Problems` collector records each problem and goes
on with a placeholder value, so one run reports every problem of a file
(``gateway check-config``); the loader raises them all together at the end, so
a placeholder never reaches a running gateway. Without a collector each
accessor raises at the first problem (unit tests of one parser use that).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from gateway.errors import ConfigError

T = TypeVar("T")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def extend(part: Any, settings: Callable[..., T], **more: Any) -> T:
    """``settings`` (a dataclass extending ``part``'s) with ``part``'s fields and ``more``.

    An upstream's ``auth`` section holds the fields of one of its ``auth.users.<user>``
    entries plus its own: the upstream parses those shared fields with the same
    function for both, then extends the shared part with the rest.
    """
    return settings(**{f.name: getattr(part, f.name) for f in dataclasses.fields(part)}, **more)


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


def _key_of(message: str) -> str:
    return message.partition(": ")[0]


def _within(key: str, parent: str) -> bool:
    return key == parent or (key.startswith(parent) and key[len(parent)] in ".[")


class Problems:
    """Every problem found in one pass over a config, in file order.

    A problem under a key that already has one (the key itself, one of its
    parents or one of its children) is a consequence of the first and is
    dropped: an unset variable is not reported again as a missing value.
    """

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        key = _key_of(message)
        if key and any(
            _within(key, seen) or _within(seen, key) for seen in map(_key_of, self.messages)
        ):
            return
        self.messages.append(message)

    def add_error(self, error: ConfigError) -> None:
        for message in error.problems:
            self.add(message)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Record a ``ConfigError`` raised inside the block and carry on after it."""
        try:
            yield
        except ConfigError as exc:
            self.add_error(exc)

    def attempt(self, parse: Callable[[], T], fallback: T) -> T:
        with self.guard():
            return parse()
        return fallback

    def raise_if_any(self) -> None:
        if self.messages:
            raise ConfigError(*self.messages)


def interpolate(
    value: Any, env: Mapping[str, str], path: str, problems: Problems | None = None
) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a YAML tree.

    A ``${VAR}`` without a default whose variable is unset is an error naming
    both the variable and the key: never a silent fallback. With ``problems``
    every unset variable is recorded (and replaced by an empty string).
    """
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            error = ConfigError(f"{path}: environment variable {name} is not set")
            if problems is None:
                raise error
            problems.add_error(error)
            return ""

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: interpolate(v, env, f"{path}.{k}" if path else str(k), problems)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]", problems) for i, v in enumerate(value)]
    return value


def environ() -> Mapping[str, str]:
    return os.environ


class Section:
    def __init__(self, data: Any, path: str, problems: Problems | None = None) -> None:
        self.path = path
        self.problems = problems
        self._used: set[str] = set()
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self._fail(f"{path or 'config'}: expected a mapping")
            data = {}
        self.data: dict[str, Any] = data

    def _fail(self, message: str) -> None:
        """Raise, or record and let the caller go on with a placeholder."""
        if self.problems is None:
            raise ConfigError(message)
        self.problems.add(message)

    def _soft(self, read: Callable[[], T], fallback: T) -> T:
        if self.problems is None:
            return read()
        return self.problems.attempt(read, fallback)

    def child(self, data: Any, path: str) -> Section:
        """A section at ``path`` that reports to the same collector."""
        return Section(data, path, self.problems)

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
        return self._soft(lambda: self._text(name, default), default or "")

    def _text(self, name: str, default: str | None) -> str:
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
        def read() -> str:
            value = self._text(name, default)
            if value not in options:
                raise ConfigError(f"{self.key(name)}: must be one of {', '.join(options)}")
            return value

        return self._soft(read, default or options[0])

    def secret(self, name: str) -> Secret:
        def read() -> Secret:
            value = self._required(name)
            if not isinstance(value, str | int):
                raise ConfigError(f"{self.key(name)}: expected a string")
            return Secret(str(value))

        return self._soft(read, Secret(""))

    def optional_secret(self, name: str) -> Secret | None:
        self._used.add(name)
        return self.secret(name) if self.has(name) and self.data[name] != "" else None

    def integer(self, name: str, default: int | None = None, *, minimum: int = 0) -> int:
        def read() -> int:
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

        return self._soft(read, minimum if default is None else default)

    def flag(self, name: str, default: bool) -> bool:
        def read() -> bool:
            value = self.raw(name, default)
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ConfigError(f"{self.key(name)}: expected true or false")

        return self._soft(read, default)

    def duration(self, name: str, default: float | None = None) -> float:
        """Seconds, from a number or a string like ``250ms``, ``2s``, ``1m``."""

        def read() -> float:
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

        return self._soft(read, 0.0 if default is None else default)

    def section(self, name: str) -> Section:
        self._used.add(name)
        return self.child(self.data.get(name), self.key(name))

    def each(self, name: str, parse: Callable[[Section], T]) -> dict[str, T]:
        """A mapping of sub-sections (e.g. ``users``), each parsed and checked for
        unknown keys. With a collector, one bad entry does not hide the next."""
        out: dict[str, T] = {}
        for key, sub in self.section(name).items():
            if self.problems is None:
                out[key] = parse(sub)
            else:
                with self.problems.guard():
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
            self._fail(f"{self.key(name)}: expected a list")
            return []
        return value

    def done(self) -> None:
        """Refuse unknown keys (every one): a typo must not silently fall back to a default."""
        unknown = sorted(set(self.data) - self._used, key=str)  # `1:` is a key too
        if not unknown:
            return
        error = ConfigError(*(f"{self.key(name)}: unknown key" for name in unknown))
        if self.problems is None:
            raise error
        self.problems.add_error(error)
