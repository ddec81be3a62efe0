"""Build frozen config dataclasses from TOML tables, with errors a person can act on.

Every message names the file, the key and what was expected (the tox habit). Unknown keys are
errors: a misspelled key in a hand-written study silently falling back to a default is the
worst kind of wrong result. Fields marked ``path_field()`` are resolved relative to the study
file and must exist.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Union

from steerlab.errors import ConfigError
from steerlab.storage import read_jsonl


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """For methods, metrics and inspectors without settings."""


def path_field(default: Any = dataclasses.MISSING, help: str = "", jsonl: tuple[str, ...] | None = None) -> Any:
    """A config field holding a file path, resolved against the study file's folder.

    ``jsonl``: the file is JSON Lines whose rows need these string keys; it is read and checked
    when the study is loaded, before any model loads.
    """
    return dataclasses.field(default=default, metadata={"path": True, "help": help, "jsonl": jsonl})


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
    names = {int: "an integer", float: "a finite number", str: "a string", bool: "true/false", type(None): "nothing"}
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
        if not math.isfinite(value):
            raise TypeError  # nan / inf from TOML: never a sensible setting
        return float(value)
    if tp is type(None):
        if value is None:
            return None
        raise TypeError
    if isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise TypeError


def build(cls: type, table: dict[str, Any], where: str, base_dir: Path | None = None, also: tuple[str, ...] = ()) -> Any:
    """Validate ``table`` into the frozen dataclass ``cls``.

    ``where`` is the location for messages, e.g. ``studies/x.toml: [methods.actdiff]``; ``also``
    names the keys of the same table that the caller read before (a method entry's ``method``,
    ``model``, ``controls``...), so that an unknown key's message lists every key the table takes.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        known = sorted({*fields, *also})
        expected = f"expected one of: {', '.join(known)}" if known else "this table takes no keys"
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' ({expected})")
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
            if fields[key].metadata.get("jsonl") is not None:
                read_jsonl(Path(kwargs[key]), fields[key].metadata["jsonl"])
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
    if path.is_dir():
        raise ConfigError(f"{where}: {path} is a folder, expected a file")
    if not path.is_file():
        raise ConfigError(f"{where}: file not found: {path}")
    return path.resolve()


def as_dict(config: Any) -> dict[str, Any]:
    """A config as plain JSON-able data (for artifacts and results.json)."""
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config or {})


def path_values(config: Any) -> list[Path]:
    """The files a config's ``path_field``s point at (already resolved by ``build``)."""
    if not dataclasses.is_dataclass(config):
        return []
    return [Path(getattr(config, f.name)) for f in dataclasses.fields(config)
            if f.metadata.get("path") and isinstance(getattr(config, f.name), str)]


def field_help(cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, help) for every field of a config class."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "(required)")
        rows.append((f.name, describe_type(hints[f.name]), default, f.metadata.get("help", "")))
    return rows


def options_parser(cls: type) -> Any:
    """An argparse parser whose flags are the fields of the dataclass ``cls`` (``top`` -> ``--top``).

    Values are read as TOML where they parse (numbers, booleans) and as strings otherwise, then
    validated by ``build`` like a study table, so command-line options get the same messages.
    """
    import argparse

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    for f in dataclasses.fields(cls):
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None, metavar="VALUE")
    return parser


def parse_options(cls: type, argv: list[str], where: str, parser: Any) -> Any:
    """``argv`` (e.g. ``['--top', '5']``) validated into the dataclass ``cls``; ConfigError when bad."""
    import tomllib

    names = {f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(cls)}
    unknown = [a for a in argv if a.startswith("--") and a.split("=", 1)[0] not in names]
    if unknown:
        raise ConfigError(f"{where}: unknown option {unknown[0]} (expected: {', '.join(sorted(names)) or 'none'})")
    import argparse

    try:
        parsed, extra = parser.parse_known_args(argv)
    except argparse.ArgumentError as exc:
        raise ConfigError(f"{where}: {exc} (each option needs a value, e.g. --{dataclasses.fields(cls)[0].name} ...)") from None
    if extra:
        raise ConfigError(f"{where}: unexpected argument {extra[0]!r}")
    table, hints = {}, typing.get_type_hints(cls)
    for key, raw in vars(parsed).items():
        if raw is None:
            continue
        if hints[key] in (str, str | None, typing.Optional[str]):
            table[key] = raw  # text options (a control) are parsed by whoever reads them
            continue
        try:
            table[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            table[key] = raw
    return build(cls, table, where)
