"""Turning TOML tables into frozen dataclasses, with errors a person can act on.

The dataclasses are the schema: a field's type says what is accepted, its default makes
it optional, and ``field(metadata=...)`` adds bounds (``min``, ``max``, ``min_items``
for lists), ``choices``,
a ``pattern`` (a regular expression the whole string must match, with ``expected``
saying in words what it wants) and ``parse`` (a normaliser that raises ``ValueError``,
e.g. for MAC addresses; applied to each item of a list).
Every error names the file, the key path and what was expected; an unknown key also
gets a "did you mean" so a typo is found at start, not at 7 a.m. at the door.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from gateway.errors import ConfigError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Where:
    """A position in the config: file plus key path, e.g. ``readers[0].baudrate``."""

    file: str
    path: str = ""

    def key(self, name: str) -> Where:
        return Where(self.file, f"{self.path}.{name}" if self.path else name)

    def index(self, i: int) -> Where:
        return Where(self.file, f"{self.path}[{i}]")

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.path or '(top level)'}: {message}")


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is Path:
        return "a path (string)"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if origin in (tuple, list):
        return f"a list of {_describe(typing.get_args(tp)[0]).removeprefix('a ')}s"
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    return str(tp)


def _got(value: object) -> str:
    return f"{type(value).__name__} {value!r}"


def convert(tp: Any, value: object, where: Where) -> Any:  # noqa: PLR0912
    """Check ``value`` against type ``tp`` and convert it; raise naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        for arg in args:
            try:
                return convert(arg, value, where)
            except ConfigError:
                continue
        raise where.error(f"expected {_describe(tp)}, got {_got(value)}")
    if origin in (tuple, list):
        (item_tp, *_rest) = typing.get_args(tp)
        if not isinstance(value, list):
            raise where.error(f"expected {_describe(tp)}, got {_got(value)}")
        items = [convert(item_tp, v, where.index(i)) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(repr(a) for a in typing.get_args(tp))
            raise where.error(f"expected one of {choices}, got {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise where.error(f"expected {_describe(tp)}, got {value!r}") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise where.error(f"expected true or false, got {_got(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise where.error(f"expected an integer, got {_got(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise where.error(f"expected a number, got {_got(value)}")
        # TOML has nan and inf; no duration or rate here means either (a nan deadline
        # compares false with everything and made a tap wait for the full timeout).
        if not math.isfinite(value):
            raise where.error(f"expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise where.error(f"expected a string, got {_got(value)}")
        return value
    if tp is Path:
        if not isinstance(value, str) or not value.strip():
            raise where.error(f"expected a path (string), got {_got(value)}")
        return Path(value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise where.error(f"expected a table, got {_got(value)}")
        return build(tp, value, where)
    raise TypeError(f"schema type {tp!r} not supported")  # a bug in our schema, not config


def _check_bounds(meta: typing.Mapping[str, Any], value: Any, where: Where) -> None:
    if value is None:
        return
    low, high = meta.get("min"), meta.get("max")
    if low is not None and value < low:
        raise where.error(f"must be at least {low}, got {value!r}")
    if high is not None and value > high:
        raise where.error(f"must be at most {high}, got {value!r}")
    pattern = meta.get("pattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise where.error(
            f"expected {meta.get('expected', f'a match of {pattern!r}')}, got {value!r}"
        )
    min_items = meta.get("min_items")
    if min_items is not None and len(value) < min_items:
        raise where.error(f"expected a list of at least {min_items} item(s), got {len(value)}")
    # No key takes a blank string: a blank name, port or URL is always a mistake (keys
    # with a pattern or a parser say what they want themselves).
    if isinstance(value, str) and not value.strip() and "parse" not in meta:
        raise where.error(f"expected a non-empty string, got {value!r}")
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise where.error(f"expected one of {', '.join(map(repr, choices))}, got {value!r}")


def _parse(parse: typing.Callable[[Any], Any], value: Any, where: Where) -> Any:
    """Apply a field's ``parse`` (metadata): a function that normalises a value or raises
    ``ValueError`` saying why it is wrong; applied to each item of a list."""
    if isinstance(value, tuple | list):
        return type(value)(_parse(parse, v, where.index(i)) for i, v in enumerate(value))
    try:
        return parse(value)
    except ValueError as exc:
        raise where.error(str(exc)) from None


def build(cls: type[T], table: typing.Mapping[str, Any], where: Where) -> T:
    """Build dataclass ``cls`` from a TOML table, rejecting unknown and missing keys."""
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in table if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(fields), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        allowed = ", ".join(sorted(fields))
        raise where.key(key).error(f"unknown key{hint}; allowed here: {allowed}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise where.key(name).error(f"missing; expected {_describe(hints[name])}")
            continue
        value = convert(hints[name], table[name], where.key(name))
        _check_bounds(f.metadata, value, where.key(name))
        if (parse := f.metadata.get("parse")) is not None:
            value = _parse(parse, value, where.key(name))
        kwargs[name] = value
    return cls(**kwargs)
