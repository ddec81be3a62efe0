"""Files a run writes and reads back: atomic writes, strict JSON, clear errors on corrupt files;
and the UTF-8 text and JSON Lines files a study reads (``read_jsonl``: every data file).

Why strict: ``json.dumps`` writes ``NaN`` by default, which strict JSON readers (browsers, jq,
other languages) reject. Every non-finite float is written as ``null``; readers of steerlab's
own files turn ``null`` back into NaN where a number is expected.
"""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path
from typing import Any

from steerlab.errors import ConfigError


def temp_sibling(path: Path) -> Path:
    """Where to write ``path`` before renaming it into place: next to it (same file system, so the
    rename is atomic) and named per process and machine, so processes sharing a run folder
    (``--only``, Ray workers on several nodes of one shared file system) never write into, or
    rename away, each other's half-written file."""
    return path.with_name(f"{path.name}.{socket.gethostname()}-{os.getpid()}.tmp")


def atomic_write_text(path: Path, text: str) -> None:
    """Write then rename, so a reader (or a resumed run) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def finite_or_none(data: Any) -> Any:
    """``data`` with every NaN / infinity replaced by None (recursively)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_or_none(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_none(v) for v in data]
    return data


def write_json(path: Path, data: Any, indent: int | None = 1) -> None:
    """Strict JSON (no NaN), written atomically."""
    atomic_write_text(path, json.dumps(finite_or_none(data), indent=indent, ensure_ascii=False, allow_nan=False))


def read_json(path: Path, what: str = "JSON file") -> Any:
    """Parse a JSON file that steerlab wrote; a missing, partial or hand-broken file is a
    ``ConfigError`` naming the file, never a traceback."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: {what} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def read_json_object(path: Path, what: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object with the ``required`` keys, or a ConfigError naming the file and the key."""
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} expected a JSON object, got {type(data).__name__}")
    missing = [k for k in required if k not in data]
    if missing:
        raise ConfigError(f"{path}: {what} lacks key '{missing[0]}'")
    return data


def read_text_file(path: Path, what: str = "data file") -> str:
    """A UTF-8 text file, or one ConfigError saying why not (missing, a folder, not UTF-8)."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, expected a {what}")
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        return path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors write one) is not an error
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None


def read_jsonl(path: Path, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows of a JSON Lines file; each must be an object whose ``required`` keys hold strings."""
    rows = []
    for number, line in enumerate(read_text_file(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{number}: expected a JSON object with key(s) {', '.join(required)}, got {type(row).__name__}")
        missing = [k for k in required if k not in row]
        if missing:
            raise ConfigError(f"{path}:{number}: missing key '{missing[0]}' (expected key(s) {', '.join(required)})")
        wrong = [k for k in required if not isinstance(row[k], str)]
        if wrong:
            raise ConfigError(f"{path}:{number}: key '{wrong[0]}' expected a string, got {row[wrong[0]]!r}")
        blank = [k for k in required if not row[k].strip()]
        if blank:  # an empty prompt, answer or label would be read as a record and measured as one
            raise ConfigError(f"{path}:{number}: key '{blank[0]}' is empty (expected text)")
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path}: no records")
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
