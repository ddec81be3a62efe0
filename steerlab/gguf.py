"""llama.cpp control vectors: a steerlab residual vector written as GGUF, and read back.

The format (llama.cpp ``common_control_vector_load_one``; repeng's ``ControlVector.export_gguf``):
a GGUF file whose ``general.architecture`` is ``controlvector``, with ``controlvector.model_hint``
(a string) and ``controlvector.layer_count`` (int32 here; repeng writes uint32; llama.cpp reads
neither), and one float32 1-D tensor ``direction.N`` per steered layer, N >= 1.

Layer numbering, checked against llama.cpp's source: the loader puts ``direction.N`` at offset
``(N - 1) * n_embd`` ("layer 1 at [0]") and ``llama_adapter_cvec::apply`` hands offset
``(il - 1) * n_embd`` to layer ``il`` for ``il`` in ``1 .. n_layer - 1``; each model graph, looping
``il`` over its 0-based blocks, calls ``build_cvec(cur, il)`` right after the FFN residual add. So
``direction.N`` is added to the output of 0-based block N, at every position: exactly steerlab's
``blocks.N.resid_post``. No shift between the two names; the off-by-ones are elsewhere:

* HF's ``hidden_states[N + 1]`` is that same output (``hidden_states[0]`` is the embeddings;
  repeng reads ``hidden_idx = layer + 1`` and exports ``direction.{layer}``);
* block 0's output cannot be steered from llama.cpp (``direction.0`` is refused, ``il`` starts at 1);
* ``blocks.N.resid_pre`` is block N-1's output, so it exports as ``direction.{N-1}``.

Strength is baked in: ``direction.N = strength * per_unit * vector``, so ``llama-cli
--control-vector FILE`` (scale 1) adds what steerlab adds at control ``strength``, and
``--control-vector-scaled FILE s`` what it adds at ``s * strength``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steerlab.artifact import Artifact, ResidualVector
from steerlab.errors import ConfigError
from steerlab.storage import temp_sibling

ARCH = "controlvector"
_DIRECTION = re.compile(r"^direction\.(\d+)$")
_SITE = re.compile(r"^blocks\.(\d+)\.(resid_post|resid_pre)$")


def control_layer(site: str, n_layers: int) -> int:
    """The llama.cpp layer N (``direction.N``) that adds at ``site``; ConfigError when none can."""
    match = _SITE.match(site)
    if match is None:
        raise ConfigError(f"site {site!r}: a llama.cpp control vector acts on the residual stream only "
                          "(blocks.N.resid_post or blocks.N.resid_pre)")
    block, kind = int(match.group(1)), match.group(2)
    layer = block if kind == "resid_post" else block - 1
    if not 1 <= layer < n_layers:
        raise ConfigError(f"site {site!r} is the output of block {layer}: llama.cpp steers the outputs of "
                          f"blocks 1..{n_layers - 1} only (direction.0 is invalid)")
    return layer


def directions(artifact: Artifact, model_info: dict[str, Any], strength: float, index: int | None = 0) -> dict[int, np.ndarray]:
    """``{N: strength * per_unit * vector}`` for the declared vector ``index`` (None: every one,
    summed per layer, as llama.cpp sums directions that share a layer)."""
    if not artifact.vectors:
        raise ConfigError("this artifact declares no residual-stream vector to export")
    if index is not None and not 0 <= index < len(artifact.vectors):
        raise ConfigError(f"vector index {index}: the artifact declares {len(artifact.vectors)} vector(s)")
    chosen = artifact.vectors if index is None else [artifact.vectors[index]]
    width, n_layers = int(model_info["d_model"]), int(model_info["n_layers"])
    out: dict[int, np.ndarray] = {}
    for decl in chosen:
        vector = artifact.tensors[decl.tensor].detach().float().cpu()  # (d_model,)
        if tuple(vector.shape) != (width,):
            raise ConfigError(f"vector '{decl.tensor}' has shape {tuple(vector.shape)}, the model is {width}-d")
        layer = control_layer(decl.site, n_layers)
        scaled = (float(strength) * decl.per_unit * vector).numpy().astype(np.float32)
        out[layer] = out[layer] + scaled if layer in out else scaled
    return dict(sorted(out.items()))


def export_control_vector(artifact: Artifact, model_info: dict[str, Any], out_path: Path | str, strength: float,
                          index: int | None = 0) -> Path:
    """Write the artifact's declared vector(s) as a llama.cpp control vector (atomically).

    ``model_info``: what ``steerlab.model.zoo.describe`` gives (``d_model``, ``n_layers``, ``name``);
    the name becomes ``controlvector.model_hint``."""
    import gguf

    found = directions(artifact, model_info, strength, index)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out_path)
    writer = gguf.GGUFWriter(str(tmp), ARCH)
    writer.add_string(f"{ARCH}.model_hint", str(model_info.get("name", "")))
    writer.add_int32(f"{ARCH}.layer_count", len(found))
    writer.add_float32("steerlab.strength", float(strength))
    if artifact.header is not None:
        writer.add_string("steerlab.method", artifact.header.method)
    for layer, direction in found.items():
        writer.add_tensor(f"direction.{layer}", direction)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out_path)
    return out_path


def _reader(path: Path) -> Any:
    import gguf

    if not path.is_file():
        raise ConfigError(f"{path}: control vector file not found")
    try:
        return gguf.GGUFReader(str(path))
    except Exception as exc:  # the reader raises ValueError, struct / numpy errors on a bad file
        raise ConfigError(f"{path}: not a GGUF file ({type(exc).__name__}: {str(exc)[:120]})") from None


def _text_field(reader: Any, key: str) -> str | None:
    field = reader.fields.get(key)
    if field is None:
        return None
    value = field.contents()
    return value if isinstance(value, str) else None


def import_control_vector(path: Path | str) -> tuple[dict[int, torch.Tensor], str]:
    """``({N: direction.N}, model_hint)`` from a llama.cpp control-vector file; N is also the
    steerlab block whose ``resid_post`` it acts on. Directions sharing a layer are summed."""
    import gguf

    path = Path(path)
    reader = _reader(path)
    arch = _text_field(reader, "general.architecture")
    if arch != ARCH:
        raise ConfigError(f"{path}: GGUF architecture {arch!r}, expected {ARCH!r} (a llama.cpp control vector)")
    vectors: dict[int, torch.Tensor] = {}
    for tensor in reader.tensors:
        match = _DIRECTION.match(tensor.name)
        if match is None or int(match.group(1)) < 1:
            raise ConfigError(f"{path}: tensor {tensor.name!r} is not 'direction.N' with N >= 1")
        if tensor.tensor_type != gguf.GGMLQuantizationType.F32 or len(tensor.shape) != 1:
            raise ConfigError(f"{path}: tensor {tensor.name!r} must be float32 and 1-D "
                              f"(got {tensor.tensor_type.name}, shape {list(tensor.shape)})")
        data = torch.from_numpy(np.array(tensor.data, dtype=np.float32).reshape(-1))  # (d_model,), copied off the mmap
        layer = int(match.group(1))
        vectors[layer] = vectors[layer] + data if layer in vectors else data
    if not vectors:
        raise ConfigError(f"{path}: no direction tensors (nothing to steer)")
    widths = sorted({int(v.numel()) for v in vectors.values()})
    if len(widths) > 1:
        raise ConfigError(f"{path}: direction tensors of different widths {widths}")
    if not all(torch.isfinite(v).all() for v in vectors.values()):
        raise ConfigError(f"{path}: a direction tensor holds NaN or infinite values")
    return dict(sorted(vectors.items())), _text_field(reader, f"{ARCH}.model_hint") or ""


def check_fits(vectors: dict[int, torch.Tensor], d_model: int, n_layers: int, model_name: str, path: Path | str) -> None:
    """ConfigError naming the file when its directions do not fit the model."""
    width = int(next(iter(vectors.values())).numel())
    if width != d_model:
        raise ConfigError(f"{path}: control vector is {width}-d, model '{model_name}' is {d_model}-d")
    outside = [n for n in vectors if n >= n_layers]
    if outside:
        raise ConfigError(f"{path}: direction.{outside[0]} steers block {outside[0]}, model '{model_name}' has "
                          f"blocks 0..{n_layers - 1}")


def as_residual_vectors(vectors: dict[int, torch.Tensor], per_unit: float = 1.0) -> tuple[dict[str, torch.Tensor], list[ResidualVector]]:
    """Artifact tensors and declarations: ``direction.N`` at ``blocks.N.resid_post``."""
    tensors = {f"direction.{n}": v for n, v in vectors.items()}
    return tensors, [ResidualVector(f"blocks.{n}.resid_post", f"direction.{n}", per_unit) for n in vectors]
