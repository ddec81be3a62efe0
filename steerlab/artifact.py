"""What a method's ``train`` returns: tensors (safetensors) + JSON metadata. Never pickle.

Why both: safetensors cannot carry nested metadata and JSON cannot carry tensors; together they
let any tool (or another language) read a trained vector or adapter without running our code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from steerlab.errors import ConfigError


def versions() -> dict[str, str]:
    import transformers

    import steerlab

    return {"steerlab": steerlab.__version__, "torch": torch.__version__, "transformers": transformers.__version__}


@dataclass
class Artifact:
    """A trained steering object.

    ``meta`` always holds ``method``, ``model`` (``steerlab.models.describe``), ``sites`` and
    ``versions``; a method adds what it needs to rebuild itself (its config, dims, norms).
    """

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, directory: Path, stem: str = "artifact") -> Path:
        """Write ``stem.safetensors`` and ``stem.json`` atomically; returns the JSON path."""
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in self.tensors.items()}  # clone: no shared storage
        meta = {**self.meta, "versions": self.meta.get("versions") or versions()}
        weights, header = directory / f"{stem}.safetensors", directory / f"{stem}.json"
        save_file(tensors, str(weights) + ".tmp")
        os.replace(str(weights) + ".tmp", weights)
        atomic_write_text(header, json.dumps(meta, indent=2, sort_keys=True))
        return header

    @classmethod
    def load(cls, directory: Path, stem: str = "artifact") -> "Artifact":
        header, weights = directory / f"{stem}.json", directory / f"{stem}.safetensors"
        if not header.exists() or not weights.exists():
            raise ConfigError(f"{directory}: no artifact '{stem}' (expected {header.name} and {weights.name})")
        return cls(tensors=load_file(str(weights)), meta=json.loads(header.read_text()))


def atomic_write_text(path: Path, text: str) -> None:
    """Write then rename, so a reader (or a resumed run) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
