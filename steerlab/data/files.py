"""Data files: JSONL prompt sets, labelled texts and contrastive pairs; dataset builders.

Every study data file is UTF-8 JSON Lines (one object a line) so it diffs well in git and streams,
read by ``storage.read_jsonl``: a line that is not JSON or lacks a key is reported with its file
and line number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steerlab.errors import ConfigError
from steerlab.storage import read_jsonl


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
