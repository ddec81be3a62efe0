"""What a method's ``train`` returns: tensors (safetensors) + JSON metadata. Never pickle.

Why both: safetensors cannot carry nested metadata and JSON cannot carry tensors; together they
let any tool (or another language) read a trained vector or adapter without running our code.

A method fills only what is its own: ``tensors``, ``meta``, the ``sites`` it touches and the
residual-stream ``vectors`` it declares (which ``inspect vector`` and ``export gguf`` read). The
runner stamps the ``header`` (method, model and a fingerprint of its weights, config, library
versions), and checks it when a run is resumed or reopened, so an artifact is never used on a
model or by a method it was not made for.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from steerlab.errors import ConfigError
from steerlab.storage import read_json_object, temp_sibling, write_json

FORMAT = "steerlab-artifact/2"

# The keys of a method's ``meta`` that core reads, when the method writes them (docs/plugin-api.md):
CORE_META = {
    "train_tokens": "tokens the training read (answer and prompt tokens of every step): the report's Cost table",
    "grad_tokens": "tokens the loss sent gradient to, summed up to the step kept (``kept_gradient_tokens``): Cost table",
    "inference_extra_bytes": "memory steering needs beyond the artifact's own tensors (GenARM's second model): Cost table",
    "describe": "what a declared residual vector stands for ('concise minus verbose'): the title of ``inspect vector``",
}
T = TypeVar("T")


def versions() -> dict[str, str]:
    import transformers

    import steerlab

    return {"steerlab": steerlab.__version__, "torch": torch.__version__, "transformers": transformers.__version__}


@dataclass(frozen=True)
class ResidualVector:
    """A direction added to the residual stream: at control ``c`` a method adds
    ``c * per_unit * tensors[tensor]`` at ``site`` (e.g. ``blocks.15.resid_post``)."""

    site: str
    tensor: str
    per_unit: float = 1.0


@dataclass(frozen=True)
class ArtifactHeader:
    """Who made an artifact, for which model: filled by the runner, never by a method."""

    method: str
    model: dict[str, Any]  # steerlab.model.zoo.describe(): name, architecture, widths, fingerprint
    config: dict[str, Any]
    versions: dict[str, str] = field(default_factory=versions)
    train_seconds: float = 0.0  # wall time of ``train`` (cost tables)
    train_seed: int | None = None  # the training seed it was trained at (None: written before artifacts said)
    reused_from: str = ""  # the artifact folder of the run it was trained in, when this run reused it (``reuse_from``)


@dataclass
class Artifact:
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)  # the method's own, JSON-able
    sites: list[str] = field(default_factory=list)
    vectors: list[ResidualVector] = field(default_factory=list)
    header: ArtifactHeader | None = None

    def vector(self, index: int = 0) -> tuple[ResidualVector, torch.Tensor]:
        """A declared residual vector and its tensor (the first one unless told)."""
        if not self.vectors:
            raise ConfigError("this artifact declares no residual-stream vector")
        decl = self.vectors[index]
        return decl, self.tensors[decl.tensor]

    def save(self, directory: Path, stem: str = "artifact") -> Path:
        """Write ``stem.safetensors`` and ``stem.json`` atomically; returns the JSON path."""
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in self.tensors.items()}  # clone: no shared storage
        weights, header = directory / f"{stem}.safetensors", directory / f"{stem}.json"
        tmp = temp_sibling(weights)
        save_file(tensors, str(tmp))
        os.replace(tmp, weights)
        write_json(header, {
            "format": FORMAT, "header": asdict(self.header) if self.header else None, "meta": self.meta,
            "sites": self.sites, "vectors": [asdict(v) for v in self.vectors],
        })
        return header

    @classmethod
    def exists(cls, directory: Path, stem: str = "artifact") -> bool:
        return (directory / f"{stem}.json").exists() and (directory / f"{stem}.safetensors").exists()

    @classmethod
    def load(cls, directory: Path, stem: str = "artifact") -> "Artifact":
        """Read and check an artifact; every problem is one ConfigError naming the file."""
        header_path, weights = directory / f"{stem}.json", directory / f"{stem}.safetensors"
        if not cls.exists(directory, stem):
            raise ConfigError(f"{directory}: no artifact '{stem}' (expected {header_path.name} and {weights.name})")
        data = read_json_object(header_path, "artifact metadata", ("format", "meta", "sites", "vectors"))
        if data["format"] != FORMAT:
            raise ConfigError(f"{header_path}: artifact format {data['format']!r} (expected {FORMAT!r})")
        try:
            tensors = load_file(str(weights))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ConfigError(f"{weights}: not a readable safetensors file ({exc})") from None
        try:
            vectors = [ResidualVector(**v) for v in data["vectors"]]
            head = ArtifactHeader(**data["header"]) if data.get("header") else None
        except TypeError as exc:
            raise ConfigError(f"{header_path}: malformed 'vectors' or 'header' ({exc})") from None
        artifact = cls(tensors, data["meta"], list(data["sites"]), vectors, head)
        artifact.check_tensors(weights)
        return artifact

    def check_tensors(self, where: Path | str) -> None:
        """Every tensor finite and floating; every declared vector present and 1-D."""
        for name, tensor in self.tensors.items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise ConfigError(f"{where}: tensor '{name}' holds NaN or infinite values")
        for decl in self.vectors:
            tensor = self.tensors.get(decl.tensor)
            if tensor is None or tensor.dim() != 1:
                raise ConfigError(f"{where}: declared vector '{decl.tensor}' at {decl.site} is missing or not 1-D")

    def expect(self, name: str, shape: tuple[int, ...], where: Path | str) -> torch.Tensor:
        """A tensor that must exist with this shape (methods call this when they rebuild)."""
        tensor = self.tensors.get(name)
        if tensor is None:
            raise ConfigError(f"{where}: artifact lacks tensor '{name}'")
        if tuple(tensor.shape) != tuple(shape):
            raise ConfigError(f"{where}: tensor '{name}' has shape {tuple(tensor.shape)}, expected {tuple(shape)}")
        return tensor

    def check_made_for(self, method: str, model: dict[str, Any], where: Path | str) -> None:
        """Refuse an artifact made by another method or on another model."""
        if self.header is None:
            raise ConfigError(f"{where}: artifact has no header (not written by a steerlab run)")
        if self.header.method != method:
            raise ConfigError(f"{where}: artifact was made by method '{self.header.method}', not '{method}'")
        mine = {k: self.header.model.get(k) for k in ("fingerprint", "d_model", "n_layers")}
        theirs = {k: model.get(k) for k in mine}
        if mine != theirs:
            raise ConfigError(f"{where}: artifact was made on model {self.header.model.get('name')!r} "
                              f"({json.dumps(mine)}), not on the loaded {model.get('name')!r} ({json.dumps(theirs)})")


class ArtifactCache(Generic[T]):
    """What a method builds from an artifact to steer with (an adapter, a head, a reward model),
    built once and reused while the same artifact comes back.

    Core hands ``steer`` the very same ``Artifact`` object for every batch of a sweep, an analysis
    and a reopened run's answers, so a method can keep the module it built. The artifact is held
    by reference and compared with ``is`` (an ``id()`` key could be reused by a new artifact once
    the old one is freed); the previous module is dropped before the next is built (two copies of
    a model need not fit at once)."""

    def __init__(self) -> None:
        self._held: tuple[Artifact, T] | None = None

    def get(self, artifact: Artifact, build: Callable[[], T]) -> T:
        """The module built for ``artifact``: ``build()`` when it is not the one held."""
        if self._held is None or self._held[0] is not artifact:
            self._held = None
            self._held = (artifact, build())
        return self._held[1]
