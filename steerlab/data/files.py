"""Data files: JSONL prompt sets, labelled texts and contrastive pairs; dataset builders.

Every study data file is UTF-8 JSON Lines (one object a line) so it diffs well in git and streams.
A line that is not JSON or lacks a key is reported with its file and line number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steerlab.errors import ConfigError
from steerlab.storage import atomic_write_text


@dataclass(frozen=True)
class BuildRequest:
    """What ``steerlab data build`` passes to a dataset builder."""

    out_dir: Path
    model: str = "smollm2-135m-instruct"
    quick: bool = False
    device: str | None = None
    dtype: str | None = None
    batch_size: int = 16
    source: Path | None = None  # data an existing builder wrote, for builders that reshape it (--from)


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset a plugin can build with a real model (``steerlab data build NAME``).

    ``build(request)`` writes the files into ``request.out_dir``; ``description`` says what they are.
    """

    name: str
    build: Callable[[BuildRequest], None]
    description: str = ""


def read_text_file(path: Path, what: str = "data file") -> str:
    """A UTF-8 text file, or one ConfigError saying why not (missing, a folder, not UTF-8)."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, expected a {what}")
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        return path.read_text(encoding="utf-8")
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
        rows.append(row)
    if not rows:
        raise ConfigError(f"{path}: no records")
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_prompts(path: Path) -> list[str]:
    return [row["text"] for row in read_jsonl(path, ("text",))]


def read_labelled(path: Path) -> tuple[list[str], list[str]]:
    rows = read_jsonl(path, ("text", "label"))
    return [r["text"] for r in rows], [str(r["label"]) for r in rows]


def file_digest(path: Path) -> str:
    """Short content hash recorded in results so a reader knows which data a run used."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
