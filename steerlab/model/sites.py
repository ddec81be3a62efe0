"""Canonical hook-site names, resolved to real modules of a model.

Plugins speak only in site names (the TransformerLens habit); this module turns names into
modules, reading where a model keeps its parts from ``steerlab.model.architectures`` (a family
table, structural detection and a user override). Names:

    embed                       token embeddings (output; GPT-2 adds learned positions after it)
    blocks.{i}.resid_pre        input of decoder block i (the residual stream before it)
    blocks.{i}.resid_post       output of decoder block i (the residual stream after it)
    blocks.{i}.attn_out         output of block i's attention module
    blocks.{i}.mlp_out          output of block i's MLP module
    blocks.{i}.attn.{q,k,v,o}_proj      the attention projections
    blocks.{i}.attn.qkv_proj            a fused query-key-value projection (GPT-2, GPT-NeoX, Phi-3)
    blocks.{i}.mlp.{gate,up,down}_proj  the MLP projections
    blocks.{i}.mlp.gate_up_proj         a fused gate-and-up projection (Phi-3)
    final_norm                  the final norm before the unembedding (output)
    logits                      the LM head's output

A model has the projection names its family has: Llama-shaped models the separate ones, GPT-2 and
GPT-NeoX ``qkv_proj``, ``o_proj``, ``up_proj``, ``down_proj``, Phi-3 ``qkv_proj``, ``o_proj``,
``gate_up_proj``, ``down_proj``. Projections are ``nn.Linear`` or GPT-2's ``Conv1D`` (weight
stored (in, out)); ``projection_features`` and ``stored_delta`` hide the difference.

``resid_post`` of block i equals ``resid_pre`` of block i+1, and follows llama.cpp's control
vector convention (added to the block output after the FFN residual). Under a parallel residual
(GPT-NeoX / Pythia: ``x + attn(ln1(x)) + mlp(ln2(x))``) ``attn_out`` and ``mlp_out`` both read the
block input and ``resid_post`` is still the block output. ``attn_out`` / ``mlp_out`` are the
modules' own outputs: families with post-norms (Gemma 2 and 3, OLMo 2) normalise them before they
join the residual stream.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

import torch
from torch import nn

from steerlab.errors import ConfigError
from steerlab.model.architectures import ATTN_PROJECTIONS, MLP_PROJECTIONS, OVERRIDE_HINT, layout_of

ATTN_LINEARS, MLP_LINEARS = ATTN_PROJECTIONS, MLP_PROJECTIONS
STREAM_SITES = {"resid_pre": None, "attn_out": "attn", "mlp_out": "mlp", "resid_post": None}  # in block order
_BLOCK_SITE = re.compile(r"^blocks\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class Site:
    """A resolved site: the module to hook and whether its input or its output is the activation."""

    name: str
    module: nn.Module
    module_path: str  # dotted path inside the model, e.g. "model.layers.3.mlp"
    reads_input: bool = False


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The decoder block list and its dotted path (``model.layers``, ``transformer.h``...)."""
    layout = layout_of(model)
    return layout.blocks, model.get_submodule(layout.blocks)


def _block_site(model: nn.Module, index: int, rest: str, name: str) -> Site | None:
    layout = layout_of(model)
    if index >= layout.n_blocks:
        raise ConfigError(f"site '{name}': block {index} out of range (model has {layout.n_blocks} blocks)")
    block_path = f"{layout.blocks}.{index}"
    if rest in ("resid_pre", "resid_post"):
        return Site(name, model.get_submodule(block_path), block_path, reads_input=rest == "resid_pre")
    part = STREAM_SITES.get(rest) or (rest if "." in rest else None)
    inner = layout.parts.get(part) if part else None
    if inner is None:
        return None
    path = f"{block_path}.{inner}"
    return Site(name, model.get_submodule(path), path)


def _model_site(model: nn.Module, name: str) -> Site | None:
    if name == "logits":
        head = model.get_output_embeddings()
        return Site(name, head, _path_of(model, head)) if head is not None else None
    if name == "embed":
        emb = model.get_input_embeddings()
        return Site(name, emb, _path_of(model, emb))
    if name == "final_norm":
        path = layout_of(model).final_norm
        return Site(name, model.get_submodule(path), path) if path else None
    return None


def _path_of(model: nn.Module, target: nn.Module) -> str:
    for path, module in model.named_modules():
        if module is target:
            return path
    raise ConfigError(f"module {type(target).__name__} is not part of the model")


def resolve(model: nn.Module, name: str) -> Site:
    """Turn a canonical site name into a ``Site``; unknown names list the valid ones."""
    match = _BLOCK_SITE.match(name)
    site = _block_site(model, int(match.group(1)), match.group(2), name) if match else _model_site(model, name)
    if site is None:
        raise ConfigError(f"unknown site '{name}' (valid sites: {', '.join(valid_site_patterns(model))}); "
                          f"for a module steerlab does not find, {OVERRIDE_HINT}")
    return site


def _block_names(model: nn.Module) -> list[str]:
    """The block-relative site names this model has, in the order a block runs them."""
    parts = layout_of(model).parts
    stream = [s for s, owner in STREAM_SITES.items() if owner is None or owner in parts]
    return stream + [p for p in parts if "." in p]


def _model_names(model: nn.Module) -> tuple[list[str], list[str]]:
    """The model-level site names before and after the blocks (``final_norm`` where one is found)."""
    return ["embed"], (["final_norm"] if layout_of(model).final_norm else []) + ["logits"]


def valid_site_patterns(model: nn.Module) -> list[str]:
    """Human-readable list of the site names this model supports."""
    last = layout_of(model).n_blocks - 1
    before, after = _model_names(model)
    return [*before, *(f"blocks.{{0..{last}}}.{s}" for s in _block_names(model)), *after]


def all_site_names(model: nn.Module) -> list[str]:
    """Every concrete site name of the model, in block order."""
    block = _block_names(model)
    before, after = _model_names(model)
    return [*before, *(f"blocks.{i}.{s}" for i in range(layout_of(model).n_blocks) for s in block), *after]


def match_sites(model: nn.Module, patterns: list[str]) -> list[Site]:
    """Resolve glob patterns such as ``blocks.*.attn.*_proj`` to the sites that exist."""
    names = [n for n in all_site_names(model) if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if not names:
        raise ConfigError(f"site patterns {patterns} match no site (valid: {', '.join(valid_site_patterns(model))}); "
                          f"for a module steerlab does not find, {OVERRIDE_HINT}")
    return [resolve(model, n) for n in names]


def projection_features(module: nn.Module) -> tuple[int, int]:
    """(in, out) of a projection: an ``nn.Linear``, or GPT-2's ``Conv1D`` (weight stored (in, out))."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
        raise ConfigError(f"module {type(module).__name__} is not a projection (an nn.Linear or Conv1D with a 2-D weight)")
    rows, cols = (int(n) for n in weight.shape)
    return (rows, cols) if stores_transposed(module) else (cols, rows)


def stored_delta(module: nn.Module, delta: torch.Tensor) -> torch.Tensor:
    """A weight update given as (out, in), in the layout the module stores its weight
    (transposed for ``Conv1D``), ready to add to ``module.weight``."""
    return delta.T if stores_transposed(module) else delta


def stores_transposed(module: nn.Module) -> bool:
    """Whether the module keeps its weight as (in, out): GPT-2's ``Conv1D`` (PEFT's ``fan_in_fan_out``)."""
    from transformers.pytorch_utils import Conv1D

    return isinstance(module, Conv1D)
