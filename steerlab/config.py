"""Build frozen config dataclasses from TOML tables, with errors a person can act on.

Every message names the file, the key and what was expected (the tox habit). Unknown keys are
errors: a misspelled key in a hand-written study silently falling back to a default is the
worst kind of wrong result. Fields marked ``path_field()`` are resolved relative to the study
file and must exist.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Union

from steerlab.errors import ConfigError


def path_field(default: Any = dataclasses.MISSING, help: str = "") -> Any:
    """A config field holding a file path, resolved against the study file's folder."""
    return dataclasses.field(default=default, metadata={"path": True, "help": help})


def help_field(default: Any, help: str) -> Any:
    """A config field with help text (shown by ``steerlab plugins --verbose`` and the docs)."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def describe_type(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a) for a in typing.get_args(tp))
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        return f"a list of {describe_type(inner)}"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", type(None): "nothing"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def coerce(value: Any, tp: Any) -> Any:
    """Return ``value`` converted to ``tp`` or raise TypeError (ints are accepted as floats)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return coerce(value, arg)
            except TypeError:
                continue
        raise TypeError
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise TypeError
    if origin is list:
        if not isinstance(value, list):
            raise TypeError
        (inner,) = typing.get_args(tp) or (Any,)
        return [coerce(v, inner) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is type(None):
        if value is None:
            return None
        raise TypeError
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise TypeError


def build(cls: type, table: dict[str, Any], where: str, base_dir: Path | None = None) -> Any:
    """Validate ``table`` into the frozen dataclass ``cls``.

    ``where`` is the location for messages, e.g. ``studies/x.toml: [methods.actdiff]``.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (expected one of: {', '.join(sorted(fields))})")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        try:
            kwargs[key] = coerce(value, hints[key])
        except TypeError:
            raise ConfigError(
                f"{where}: key '{key}' expected {describe_type(hints[key])}, got {value!r}"
            ) from None
        if fields[key].metadata.get("path") and isinstance(kwargs[key], str):
            kwargs[key] = str(resolve_path(kwargs[key], base_dir, f"{where}: key '{key}'"))
    missing = [n for n, f in fields.items() if n not in kwargs and _required(f)]
    if missing:
        raise ConfigError(f"{where}: missing key '{missing[0]}' ({describe_type(hints[missing[0]])})")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def resolve_path(value: str, base_dir: Path | None, where: str) -> Path:
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.exists():
        raise ConfigError(f"{where}: file not found: {path}")
    return path


def as_dict(config: Any) -> dict[str, Any]:
    """A config as plain JSON-able data (for artifacts and results.json)."""
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config or {})


def field_help(cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) for every field of a config class."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        rows.append((f.name, describe_type(hints[f.name]), default, f.metadata.get("help", "")))
    return rows
